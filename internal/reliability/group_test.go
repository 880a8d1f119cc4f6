package reliability

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/internal/deliver"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// The steps of a group commit at which TestKillGroupSteps kills the
// fetching process. The first five kill it from within (the handler, the
// sink's flush, the State's Put); the last two from the server, when the
// process asks for the first deletion and for the commit.
var groupSteps = []string{"handler", "flush-before", "flush-after", "put-before", "put-after", "delete", "commit"}

const (
	groupMsgs = 10
	groupSize = 4
	// groupKillCall is the call (of Flush or Put, and of the handler
	// within its group) that kills: in the second group.
	groupKillCall = 2
	groupUser     = "alice"
	groupPass     = "alice-secret"
)

// TestKillGroupSteps kills a fetching process (SIGKILL) at each step of a
// group commit (after a handler returned nil, before and after the
// sink's flush, before and after the State's Put, at the first deletion
// and at the commit), over POP3 and IMAP, with DeleteAfterFetch and
// KeepOnServer; then a clean run with the same State and Maildir finishes.
// Every message must be in the Maildir, none more than twice and at most
// one group's worth twice in all, and the server must hold what the
// retention says.
func TestKillGroupSteps(t *testing.T) {
	if os.Getenv("UNIMAIL_GROUP_CHILD") != "" {
		t.Skip("the child process of TestKillGroupSteps runs in TestGroupChild")
	}
	for _, proto := range []string{"pop3", "imap"} {
		for _, ret := range []mailaccess.Retention{mailaccess.DeleteAfterFetch, mailaccess.KeepOnServer} {
			for _, step := range groupSteps {
				if ret == mailaccess.KeepOnServer && (step == "delete" || step == "commit") {
					continue // nothing is deleted
				}
				t.Run(fmt.Sprintf("%s/%s/%s", proto, ret, step), func(t *testing.T) {
					t.Parallel()
					killGroupStep(t, proto, ret, step)
				})
			}
		}
	}
}

// groupServer is the in-process server of one case, which can kill the
// child when it sends a given command.
type groupServer struct {
	addr     string
	contents func() [][]byte
	mu       sync.Mutex
	child    *os.Process
	killOn   map[string]bool
	killed   bool
}

func (g *groupServer) command(name string) (kill bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.child != nil && g.killOn[name] && !g.killed {
		g.killed = true
		g.child.Kill()
		return true
	}
	return false
}

func killGroupStep(t *testing.T, proto string, ret mailaccess.Retention, step string) {
	var msgs [][]byte
	for i := range groupMsgs {
		msgs = append(msgs, []byte(fmt.Sprintf("From: a@example.com\r\nSubject: group %d\r\nMessage-ID: <g%d@example.com>\r\n\r\nbody %d\r\n", i, i, i)))
	}
	g := &groupServer{killOn: map[string]bool{}}
	switch {
	case step == "delete" && proto == "pop3":
		g.killOn["DELE"] = true
	case step == "delete":
		g.killOn["UID STORE"] = true
	case step == "commit" && proto == "pop3":
		g.killOn["QUIT"] = true
	case step == "commit":
		g.killOn["UID EXPUNGE"] = true
	}
	switch proto {
	case "pop3":
		s := poptest.NewServer(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
			return poptest.Fault{Drop: g.command(c.Name)}
		}})
		s.AddUser(groupUser, groupPass)
		for _, m := range msgs {
			s.AddMessage(groupUser, m)
		}
		g.addr, g.contents = s.Addr, func() [][]byte { return s.Messages(groupUser) }
	default:
		s := imaptest.NewServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
			return imaptest.Fault{Drop: g.command(c.Name)}
		}})
		s.AddUser(groupUser, groupPass)
		for _, m := range msgs {
			s.Append(groupUser, "INBOX", m)
		}
		g.addr, g.contents = s.Addr, func() [][]byte { return s.Messages(groupUser, "INBOX") }
	}
	dir := t.TempDir()
	run := func(killStep string) error {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGroupChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "UNIMAIL_GROUP_CHILD="+killStep, "UNIMAIL_GROUP_PROTO="+proto,
			"UNIMAIL_GROUP_ADDR="+g.addr, "UNIMAIL_GROUP_DIR="+dir, "UNIMAIL_GROUP_RET="+ret.String())
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		g.child = cmd.Process
		g.mu.Unlock()
		err := cmd.Wait()
		g.mu.Lock()
		g.child = nil
		g.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out.String())
		}
		return nil
	}
	err := run(step)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run to kill at %s was not killed: %v", step, err)
	}
	if err := run("none"); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	counts := map[[32]byte]int{}
	names, err := filepath.Glob(filepath.Join(dir, "maildir", "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		counts[sha256.Sum256(b)]++
	}
	dups := 0
	for i, m := range msgs {
		n := counts[sha256.Sum256(m)]
		if n < 1 || n > 2 {
			t.Fatalf("message %d is %d times in the Maildir (killed at %s)", i, n, step)
		}
		dups += n - 1
	}
	if dups > groupSize {
		t.Fatalf("%d duplicates, more than one group (%d)", dups, groupSize)
	}
	left := len(g.contents())
	if want := map[mailaccess.Retention]int{mailaccess.DeleteAfterFetch: 0, mailaccess.KeepOnServer: groupMsgs}[ret]; left != want {
		t.Fatalf("the server holds %d messages, want %d", left, want)
	}
	t.Logf("killed at %s: 0 lost, %d duplicates (bound %d)", step, dups, groupSize)
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// killState kills the process around its n-th Put.
type killState struct {
	*mailaccess.FileState
	step  string
	calls int
}

func (s *killState) Put(ctx context.Context, mb string, recs ...mailaccess.Record) error {
	s.calls++
	killIf(s.step == "put-before" && s.calls == groupKillCall)
	err := s.FileState.Put(ctx, mb, recs...)
	killIf(s.step == "put-after" && s.calls == groupKillCall)
	return err
}

func killIf(cond bool) {
	if cond {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal arrives
	}
}

// TestGroupChild is the fetching process of TestKillGroupSteps; it runs
// only as that test's child. It fetches into a Maildir with its own
// State, in groups of groupSize through the Maildir's group commit (the
// sink of examples/retrieve), and kills itself at the step it is told.
func TestGroupChild(t *testing.T) {
	step := os.Getenv("UNIMAIL_GROUP_CHILD")
	if step == "" {
		t.Skip("run by TestKillGroupSteps")
	}
	dir := os.Getenv("UNIMAIL_GROUP_DIR")
	ret, err := mailaccess.ParseRetention(os.Getenv("UNIMAIL_GROUP_RET"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := mailaccess.OpenFileState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	md, err := deliver.OpenMaildir(filepath.Join(dir, "maildir"))
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	ctx := context.Background()
	opts := mailaccess.DialOptions{Auth: mailaccess.Auth{Username: groupUser, Password: groupPass}, Security: mailaccess.SecurityInsecureCleartext, Timeout: 10 * time.Second}
	addr := os.Getenv("UNIMAIL_GROUP_ADDR")
	var mb mailaccess.Mailbox
	if os.Getenv("UNIMAIL_GROUP_PROTO") == "pop3" {
		mb, err = pop.Dial(ctx, addr, &pop.Options{DialOptions: opts})
	} else {
		mb, err = imap.Dial(ctx, addr, &imap.Options{DialOptions: opts})
	}
	if err != nil {
		t.Fatal(err)
	}
	batch := md.Batch()
	defer batch.Discard()
	handled, flushes := 0, 0
	f := &mailaccess.Fetcher{
		Retention: ret,
		State:     &killState{FileState: fs, step: step},
		Batch:     mailaccess.Batch{Messages: groupSize},
		Flush: func(ctx context.Context) error {
			flushes++
			killIf(step == "flush-before" && flushes == groupKillCall)
			_, err := batch.Flush()
			killIf(step == "flush-after" && flushes == groupKillCall)
			return err
		},
	}
	_, err = f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
		if _, err := batch.Add(m.Body); err != nil {
			return err
		}
		handled++
		killIf(step == "handler" && handled == groupSize+groupKillCall)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if step != "none" {
		t.Fatalf("not killed at %s (%d handled, %d flushes)", step, handled, flushes)
	}
}
