//go:build unix

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawned runs cmd (its Path, Args, Stdin, Stdout, Stderr and Env) through
// the launcher bench/cmd/spawn (launcher is its path and any arguments
// before the command) and returns the wall time and peak RSS that the
// launcher reported. A command that exits with a non-zero status is an
// error, with the Sample still filled in.
//
// When ctx ends, the launcher and the command (its own process group) are
// killed.
func spawned(ctx context.Context, cmd *exec.Cmd, launcher []string) (Sample, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return Sample{}, err
	}
	defer pr.Close()
	args := append(append(append([]string{}, launcher[1:]...), cmd.Path), cmd.Args[1:]...)
	l := exec.CommandContext(ctx, launcher[0], args...)
	l.Stdin, l.Stdout, l.Stderr, l.Env = cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env
	l.ExtraFiles = []*os.File{pw}
	l.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	l.Cancel = func() error { return syscall.Kill(-l.Process.Pid, syscall.SIGKILL) }
	if err := l.Start(); err != nil {
		pw.Close()
		return Sample{}, err
	}
	pw.Close()
	b, rerr := io.ReadAll(pr)
	werr := l.Wait()
	s, code, perr := parseSpawnReport(string(b))
	if perr != nil {
		switch {
		case werr != nil:
			return Sample{}, fmt.Errorf("launcher: %v", werr)
		case rerr != nil:
			return Sample{}, rerr
		}
		return Sample{}, perr
	}
	if code != 0 {
		return s, fmt.Errorf("%s exited with status %d", cmd.Path, code)
	}
	return s, werr
}

// parseSpawnReport parses the launcher's line "<wall ns> <rss bytes>
// <exit status>".
func parseSpawnReport(line string) (Sample, int, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return Sample{}, 0, fmt.Errorf("launcher report %q: want three numbers", line)
	}
	var n [3]int64
	for i := range f {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return Sample{}, 0, fmt.Errorf("launcher report %q: %v", line, err)
		}
		n[i] = v
	}
	return Sample{Wall: time.Duration(n[0]), MaxRSS: n[1]}, int(n[2]), nil
}

// raiseNoFile raises this process's soft limit of open files to its hard
// limit: a worker holding a thousand connections needs more than the
// usual 1024.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
