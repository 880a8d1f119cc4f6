package reliability

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// faultTimeout is the driver Timeout of a faulted run; stalls last
// longer.
const (
	faultTimeout = 300 * time.Millisecond
	stallFor     = 1200 * time.Millisecond
)

// step is one command of a clean conversation (Seq 0 is the greeting).
type step struct {
	seq  int
	name string
	line string
}

type faultKind int

const (
	fDrop      faultKind = iota // drop before the command runs
	fAfterExec                  // run it, drop before the answer
	fAfterByte                  // run it, drop after bytes of the answer
	fRefuse                     // -ERR / NO instead of running it
	fStall                      // stall past the driver's Timeout
)

// fault is one fault at one step of the first connection.
type fault struct {
	kind  faultKind
	step  step
	bytes int // fAfterByte
}

func (f fault) String() string {
	what := [...]string{"drop-before", "drop-after-exec", "drop-after-bytes", "refuse", "stall"}[f.kind]
	if f.kind == fAfterByte {
		what += "=" + strconv.Itoa(f.bytes)
	}
	name := f.step.name
	if f.step.seq == 0 {
		name = "greeting"
	}
	return fmt.Sprintf("%s@%d:%s", what, f.step.seq, name)
}

// memServer is an in-process server holding alice's mail drop.
type memServer interface {
	seed(msgs [][]byte)
	inbox() [][]byte
	folder() [][]byte
	dial(ctx context.Context, timeout time.Duration) (mailaccess.Mailbox, error)
	// steps returns the commands of connection 1, the greeting first.
	steps() []step
	// inject arms f on connection 1; hit is set when it fires.
	inject(f fault, hit *atomic.Bool)
	waitIdle(ctx context.Context) error
}

type popMem struct{ s *poptest.Server }

func newPopMem(t *testing.T) memServer {
	s := poptest.NewServer(t, &poptest.Config{LockWait: 2 * time.Second})
	s.AddUser(user, password)
	return &popMem{s}
}

func (p *popMem) seed(msgs [][]byte) { p.s.SetMessages(user, msgs) }
func (p *popMem) inbox() [][]byte    { return p.s.Messages(user) }
func (p *popMem) folder() [][]byte   { return nil }
func (p *popMem) waitIdle(ctx context.Context) error {
	return p.s.WaitIdle(ctx)
}
func (p *popMem) dial(ctx context.Context, timeout time.Duration) (mailaccess.Mailbox, error) {
	return pop.Dial(ctx, p.s.Addr, &pop.Options{Auth: mailaccess.Auth{Username: user, Password: password}, Security: mailaccess.SecurityInsecureCleartext, Timeout: timeout})
}
func (p *popMem) steps() []step {
	out := []step{{seq: 0}}
	for _, c := range p.s.Commands() {
		if c.Conn == 1 {
			out = append(out, step{seq: c.Seq, name: c.Name, line: c.String()})
		}
	}
	return out
}
func (p *popMem) inject(f fault, hit *atomic.Bool) {
	p.s.SetFault(func(c poptest.Command) poptest.Fault {
		if c.Conn != 1 || c.Seq != f.step.seq {
			return poptest.Fault{}
		}
		hit.Store(true)
		switch f.kind {
		case fDrop:
			return poptest.Fault{Drop: true}
		case fAfterExec:
			return poptest.Fault{DropAfterExec: true}
		case fAfterByte:
			return poptest.Fault{DropAfterBytes: f.bytes}
		case fRefuse:
			return poptest.Fault{Err: "[SYS/TEMP] refused by the test"}
		default:
			return poptest.Fault{Stall: stallFor}
		}
	})
}

type imapMem struct{ s *imaptest.Server }

type quiet struct{}

func (quiet) Printf(string, ...any) {}

func newIMAPMem(t *testing.T) memServer {
	s := imaptest.NewServer(t, &imaptest.Config{Logger: quiet{}})
	s.AddUser(user, password)
	s.CreateFolder(user, archive)
	return &imapMem{s}
}

func (m *imapMem) seed(msgs [][]byte) { m.s.SetMessages(user, "INBOX", msgs) }
func (m *imapMem) inbox() [][]byte    { return m.s.Messages(user, "INBOX") }
func (m *imapMem) folder() [][]byte   { return m.s.Messages(user, archive) }
func (m *imapMem) waitIdle(ctx context.Context) error {
	return m.s.WaitIdle(ctx)
}
func (m *imapMem) dial(ctx context.Context, timeout time.Duration) (mailaccess.Mailbox, error) {
	return imap.Dial(ctx, m.s.Addr, &imap.Options{Auth: mailaccess.Auth{Username: user, Password: password}, Security: mailaccess.SecurityInsecureCleartext, Timeout: timeout})
}
func (m *imapMem) steps() []step {
	out := []step{{seq: 0}}
	for _, c := range m.s.Commands() {
		if c.Conn == 1 {
			out = append(out, step{seq: c.Seq, name: c.Name, line: c.Line})
		}
	}
	return out
}
func (m *imapMem) inject(f fault, hit *atomic.Bool) {
	m.s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Conn != 1 || c.Seq != f.step.seq {
			return imaptest.Fault{}
		}
		hit.Store(true)
		switch f.kind {
		case fDrop:
			return imaptest.Fault{Drop: true}
		case fAfterExec:
			// imaptest runs the command before it sends any byte of
			// the answer: one byte is "executed, answer lost".
			return imaptest.Fault{DropAfterBytes: 1}
		case fAfterByte:
			return imaptest.Fault{DropAfterBytes: f.bytes}
		case fRefuse:
			return imaptest.Fault{No: "[UNAVAILABLE] refused by the test"}
		default:
			return imaptest.Fault{Stall: stallFor}
		}
	})
}

// transferred returns the index of the message that step moves (RETR n,
// UID FETCH n with a body), or -1.
func transferred(protocol string, s step) int {
	f := strings.Fields(s.line)
	switch {
	case protocol == "pop3" && s.name == "RETR" && len(f) == 2:
		n, err := strconv.Atoi(f[1])
		if err == nil {
			return n - 1
		}
	case protocol == "imap" && s.name == "UID FETCH" && strings.Contains(strings.ToUpper(s.line), "BODY") && len(f) >= 4:
		n, err := strconv.Atoi(f[3])
		if err == nil {
			return n - 1 // a fresh server numbers the seeded messages from 1
		}
	}
	return -1
}

// faultsFor lists the faults to try on a clean conversation: at every
// step, a drop before and after it runs, a cut after a few bytes of its
// answer, a refusal and a stall; in the middle of every message transfer
// a cut halfway through the message.
func faultsFor(protocol string, steps []step, msgs [][]byte) []fault {
	var out []fault
	for _, s := range steps {
		out = append(out, fault{kind: fDrop, step: s}, fault{kind: fStall, step: s})
		if s.seq == 0 {
			out = append(out, fault{kind: fAfterByte, step: s, bytes: 5})
			continue
		}
		out = append(out,
			fault{kind: fAfterExec, step: s},
			fault{kind: fAfterByte, step: s, bytes: 5},
			fault{kind: fRefuse, step: s})
		if i := transferred(protocol, s); i >= 0 && i < len(msgs) {
			// The status line or the FETCH prefix is some 20 to 60
			// bytes; half the message lands well inside it.
			out = append(out, fault{kind: fAfterByte, step: s, bytes: 40 + len(msgs[i])/2})
			out = append(out, fault{kind: fAfterByte, step: s, bytes: 40 + len(msgs[i]) - 8})
		}
	}
	return out
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// TestFaultAtEveryStep drops, refuses and stalls every command of a clean
// conversation with the in-process servers, for every retention, then
// finishes with a clean run on the same State.
func TestFaultAtEveryStep(t *testing.T) {
	servers := []struct {
		protocol string
		new      func(t *testing.T) memServer
	}{{"pop3", newPopMem}, {"imap", newIMAPMem}}
	for _, srv := range servers {
		for _, ret := range retentions(srv.protocol) {
			t.Run(srv.protocol+"/"+ret.String(), func(t *testing.T) {
				t.Parallel()
				testFaultAtEveryStep(t, srv.protocol, srv.new, ret)
			})
		}
	}
	t.Run("pop3/move", func(t *testing.T) {
		// MoveTo on POP3 is refused before anything is fetched.
		s := newPopMem(t)
		msgs := corpus(2, "move")
		s.seed(msgs)
		mb, err := s.dial(t.Context(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		l := newLedger()
		_, err = (&mailaccess.Fetcher{Retention: mailaccess.MoveTo(archive), State: &mailaccess.MemoryState{}}).Fetch(t.Context(), mb, l.handle)
		if !errors.Is(err, mailaccess.ErrUnsupported) {
			t.Fatalf("MoveTo on POP3: %v, want ErrUnsupported", err)
		}
		if len(l.delivered) != 0 || len(s.inbox()) != 2 {
			t.Fatalf("delivered %d, server holds %d", len(l.delivered), len(s.inbox()))
		}
	})
}

func testFaultAtEveryStep(t *testing.T, protocol string, newServer func(*testing.T) memServer, ret mailaccess.Retention) {
	msgs := corpus(4, "step")
	// A clean run gives the conversation.
	rec := newServer(t)
	rec.seed(msgs)
	l := newLedger()
	if err := runOnce(t.Context(), rec, ret, &watchState{State: &mailaccess.MemoryState{}, l: l}, l, faultTimeout, t0); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	steps := rec.steps()
	faults := faultsFor(protocol, steps, msgs)
	var fired atomic.Int64
	jobs := make([]func() error, len(faults))
	for i, f := range faults {
		jobs[i] = func() error {
			err := faultCase(t, newServer, ret, msgs, f, &fired)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			return nil
		}
	}
	failed := 0
	for _, err := range parallel(12, jobs) {
		if err != nil {
			failed++
			t.Error(err)
		}
	}
	var names []string
	for _, s := range steps[1:] {
		names = append(names, s.name)
	}
	t.Logf("conversation: greeting, %s", strings.Join(names, ", "))
	t.Logf("%d steps, %d faults (%d fired), %d failed; 0 messages lost, 0 duplicates allowed", len(steps), len(faults), fired.Load(), failed)
	if fired.Load() != int64(len(faults)) {
		t.Errorf("only %d of %d faults fired: the conversation was not deterministic", fired.Load(), len(faults))
	}
}

// runOnce dials and fetches once.
func runOnce(ctx context.Context, s memServer, ret mailaccess.Retention, st mailaccess.State, l *ledger, timeout time.Duration, now time.Time) error {
	mb, err := s.dial(ctx, timeout)
	if err != nil {
		return err
	}
	_, err = (&mailaccess.Fetcher{Retention: ret, State: st, Now: fixed(now)}).Fetch(ctx, mb, l.handle)
	return err
}

func faultCase(t *testing.T, newServer func(*testing.T) memServer, ret mailaccess.Retention, msgs [][]byte, f fault, fired *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := newServer(t)
	s.seed(msgs)
	var hit atomic.Bool
	s.inject(f, &hit)
	l := newLedger()
	st := &watchState{State: &mailaccess.MemoryState{}, l: l}
	first := runOnce(ctx, s, ret, st, l, faultTimeout, t0)
	if err := s.waitIdle(ctx); err != nil {
		return fmt.Errorf("server did not end the faulted session: %v", err)
	}
	if hit.Load() {
		fired.Add(1)
	}
	if err := checkSafe(msgs, s.inbox(), s.folder(), l); err != nil {
		return fmt.Errorf("after the faulted run (%v): %w", first, err)
	}
	// The clean rerun, two hours later (KeepFor then deletes what the
	// faulted run delivered).
	later := t0.Add(2 * time.Hour)
	firstRun := map[sum]bool{}
	for _, m := range msgs {
		if n, _ := l.took(sha(m)); n > 0 {
			firstRun[sha(m)] = true
		}
	}
	err := retry(ctx, func() error { return runOnce(ctx, s, ret, st, l, 10*time.Second, later) })
	if err != nil {
		return fmt.Errorf("clean rerun after %v: %w", first, err)
	}
	kept := func(m []byte) bool { return !firstRun[sha(m)] }
	if _, err := checkDone(ret, msgs, s.inbox(), s.folder(), l, kept, 0); err != nil {
		return fmt.Errorf("after the faulted run (%v) and a clean rerun: %w", first, err)
	}
	return nil
}
