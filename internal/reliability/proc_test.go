package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// retrieveBinary builds examples/retrieve once for the package's tests.
func retrieveBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go tool to build examples/retrieve: %w", err)
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "unimail-reliability-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "retrieve")
		cmd := exec.Command(goTool, "build", "-o", buildBin, "../../examples/retrieve")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build examples/retrieve: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// fastDir returns a new directory removed at the end of the test, on
// tmpfs when there is one (the Maildir and the state fsync every message;
// the kills in these tests are process kills, not power failures).
func fastDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "unimail-reliability-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// account is one Dovecot user reached by the retrieve command.
type account struct {
	d        *dovecottest.Server
	user     string
	protocol string
	ca       string
}

func (a *account) url() string {
	if a.protocol == "pop3" {
		return "pop3s://" + a.user + "@" + a.d.POP3SAddr
	}
	return "imaps://" + a.user + "@" + a.d.IMAPSAddr + "/INBOX"
}

// retrieveCmd is one run of the retrieve command.
type retrieveCmd struct {
	bin, maildir, state, retention, url, ca string
	// batch, when above zero, is retrieve's -batch: the most messages
	// made durable together, and so the most that one interrupted run
	// can leave twice in the Maildir.
	batch int
}

func (r retrieveCmd) command(ctx context.Context) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	os.MkdirAll(filepath.Dir(r.maildir), 0o700)
	os.MkdirAll(filepath.Dir(r.state), 0o700)
	args := []string{"-maildir", r.maildir, "-state", r.state, "-retention", r.retention, "-ca", r.ca, "-timeout", "10s"}
	if r.batch > 0 {
		args = append(args, "-batch", strconv.Itoa(r.batch))
	}
	cmd := exec.CommandContext(ctx, r.bin, append(args, r.url)...)
	cmd.Env = append(os.Environ(), "UNIMAIL_PASSWORD="+password)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}

// complete runs the command until it exits 0, retrying the failures that
// a POP3 maildrop still locked by a killed session causes.
func (r retrieveCmd) complete(ctx context.Context) (stdout string, err error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd, out, errb := r.command(ctx)
		err := cmd.Run()
		if err == nil {
			return out.String(), nil
		}
		msg := strings.TrimSpace(errb.String())
		if time.Now().After(deadline) || !strings.Contains(strings.ToLower(msg), "in use") {
			return out.String(), fmt.Errorf("%v: %s", err, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maildirCounts counts the messages in the Maildir's new/ and cur/ by
// content.
func maildirCounts(dir string) (map[sum]int, error) {
	counts := map[sum]int{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				return nil, err
			}
			counts[sha256.Sum256(b)]++
		}
	}
	return counts, nil
}

// checkMaildir checks what a retrieve run left: every message the server
// does not hold is in the Maildir; the Maildir holds nothing that was not
// seeded. With done, every message is in the Maildir at least once, at
// most maxDup copies are extra, and the server holds what ret says
// ("keep": everything, "delete": nothing). It returns the extra copies.
func checkMaildir(msgs, onServer [][]byte, maildir string, done bool, ret string, maxDup int) (dups int, err error) {
	counts, err := maildirCounts(maildir)
	if err != nil {
		return 0, err
	}
	seeded := map[sum]bool{}
	for _, m := range msgs {
		seeded[sha256.Sum256(m)] = true
	}
	for s := range counts {
		if !seeded[s] {
			return 0, errors.New("the Maildir holds a message that was never seeded (a torn or mixed file?)")
		}
	}
	server := tally(onServer)
	for i, m := range msgs {
		on := server[sha256.Sum256(m)]
		got := counts[sha256.Sum256(m)]
		if on == 0 && got == 0 {
			return 0, fmt.Errorf("LOST: message %d is neither on the server nor in the Maildir", i)
		}
		if on > 1 {
			return 0, fmt.Errorf("message %d is %d times on the server", i, on)
		}
		if done && got == 0 {
			return 0, fmt.Errorf("message %d is not in the Maildir after a complete run", i)
		}
		if got > 1 {
			dups += got - 1
		}
	}
	if !done {
		return dups, nil
	}
	if dups > maxDup {
		return dups, fmt.Errorf("%d duplicate copies in the Maildir, bound %d", dups, maxDup)
	}
	switch ret {
	case "keep":
		if len(onServer) != len(msgs) {
			return dups, fmt.Errorf("keep: the server holds %d messages, want %d", len(onServer), len(msgs))
		}
	case "delete":
		if len(onServer) != 0 {
			return dups, fmt.Errorf("delete: the server still holds %d messages", len(onServer))
		}
	}
	return dups, nil
}
