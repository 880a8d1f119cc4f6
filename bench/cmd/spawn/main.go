//go:build unix

// Command spawn runs a command, waits for it, and reports its wall time
// and peak resident set size: the launcher of every process that
// unimail-bench measures.
//
// Usage:
//
//	spawn COMMAND [ARG...]
//
// The command gets spawn's standard input, output and error. When it has
// been reaped, spawn writes one line to file descriptor 3,
//
//	<wall time in ns> <peak RSS in bytes> <exit status>
//
// (exit status -1: killed by a signal), and exits with the command's
// status.
//
// Why a launcher: on Linux a child's ru_maxrss starts at the resident size
// of the process that spawned it (exec records the peak of the memory it
// replaces, which after fork or vfork is the parent's). A benchmark that
// holds a seeded mailbox in memory would pass its own size on to every
// process it measures. spawn is kept tiny (it imports no more than it
// needs) so that the floor it passes on is about 2 MiB.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// reportFD is the file descriptor of the report line.
const reportFD = 3

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	report := os.NewFile(reportFD, "report")
	if len(args) == 0 || report == nil {
		fmt.Fprintln(os.Stderr, "usage: spawn COMMAND [ARG...] (with the report pipe on fd 3)")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "spawn: %v\n", err)
		return 2
	}
	code := cmd.ProcessState.ExitCode()
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = maxRSSBytes(ru)
	}
	line := strconv.FormatInt(int64(wall), 10) + " " + strconv.FormatInt(rss, 10) + " " + strconv.Itoa(code) + "\n"
	if _, err := report.WriteString(line); err != nil {
		fmt.Fprintf(os.Stderr, "spawn: writing the report: %v\n", err)
		return 2
	}
	report.Close()
	if code < 0 {
		return 1
	}
	return code
}
