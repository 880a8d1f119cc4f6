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
	// msg is the index of the message in whose middle an fAfterByte
	// cut is meant to land, or -1.
	msg int
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
	// add appends a message to the mail drop.
	add(msg []byte)
	// steps returns the commands of connection conn, the greeting first.
	steps(conn int) []step
	// inject arms f on connection conn; hit is set when it fires.
	inject(conn int, f fault, hit *atomic.Bool)
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
	return pop.Dial(ctx, p.s.Addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}, Security: mailaccess.SecurityInsecureCleartext, Timeout: timeout}})
}
func (p *popMem) add(msg []byte) { p.s.AddMessage(user, msg) }
func (p *popMem) steps(conn int) []step {
	out := []step{{seq: 0}}
	for _, c := range p.s.Commands() {
		if c.Conn == conn {
			out = append(out, step{seq: c.Seq, name: c.Name, line: c.String()})
		}
	}
	return out
}
func (p *popMem) inject(conn int, f fault, hit *atomic.Bool) {
	p.s.SetFault(func(c poptest.Command) poptest.Fault {
		if c.Conn != conn || c.Seq != f.step.seq {
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

func newIMAPMem(t *testing.T) memServer { return newIMAPMemConfig(t, &imaptest.Config{}) }

// newIMAPMemNoMove is a server without MOVE: MoveTo falls back to UID
// COPY, UID STORE and UID EXPUNGE.
func newIMAPMemNoMove(t *testing.T) memServer {
	return newIMAPMemConfig(t, &imaptest.Config{NoMove: true})
}

func newIMAPMemConfig(t *testing.T, cfg *imaptest.Config) memServer {
	cfg.Logger = quiet{}
	s := imaptest.NewServer(t, cfg)
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
	return imap.Dial(ctx, m.s.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}, Security: mailaccess.SecurityInsecureCleartext, Timeout: timeout}})
}
func (m *imapMem) add(msg []byte) { m.s.Append(user, "INBOX", msg) }
func (m *imapMem) steps(conn int) []step {
	out := []step{{seq: 0}}
	for _, c := range m.s.Commands() {
		if c.Conn == conn {
			out = append(out, step{seq: c.Seq, name: c.Name, line: c.Line})
		}
	}
	return out
}
func (m *imapMem) inject(conn int, f fault, hit *atomic.Bool) {
	m.s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Conn != conn || c.Seq != f.step.seq {
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

// transferred returns the indexes of the messages that step moves, in
// the order the answer carries them (RETR n; UID FETCH <set> with a body,
// one message or a batch), or nil.
func transferred(protocol string, s step, total int) []int {
	f := strings.Fields(s.line)
	switch {
	case protocol == "pop3" && s.name == "RETR" && len(f) == 2:
		if n, err := strconv.Atoi(f[1]); err == nil {
			return []int{n - 1}
		}
	case protocol == "imap" && s.name == "UID FETCH" && strings.Contains(strings.ToUpper(s.line), "BODY") && len(f) >= 4:
		// A fresh server numbers the seeded messages from 1.
		var out []int
		for _, r := range strings.Split(f[3], ",") {
			lo, hi, isRange := strings.Cut(r, ":")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil
			}
			b := a
			if isRange {
				if hi == "*" {
					b = total
				} else if b, err = strconv.Atoi(hi); err != nil {
					return nil
				}
			}
			for u := min(a, b); u <= max(a, b); u++ {
				out = append(out, u-1)
			}
		}
		return out
	}
	return nil
}

// faultsFor lists the faults to try on a clean conversation: at every
// step, a drop before and after it runs, a cut after a few bytes of its
// answer, a refusal and a stall; in the middle of every message transfer
// a cut halfway through the message.
func faultsFor(protocol string, steps []step, msgs [][]byte) []fault {
	var out []fault
	for _, s := range steps {
		out = append(out, fault{kind: fDrop, step: s, msg: -1}, fault{kind: fStall, step: s, msg: -1})
		if s.seq == 0 {
			out = append(out, fault{kind: fAfterByte, step: s, bytes: 5, msg: -1})
			continue
		}
		out = append(out,
			fault{kind: fAfterExec, step: s, msg: -1},
			fault{kind: fAfterByte, step: s, bytes: 5, msg: -1},
			fault{kind: fRefuse, step: s, msg: -1})
		// The status line or the FETCH prefix of each message is some
		// 20 to 50 bytes; half of each message lands well inside it.
		prefix := 0
		for _, i := range transferred(protocol, s, len(msgs)) {
			if i < 0 || i >= len(msgs) {
				continue
			}
			out = append(out, fault{kind: fAfterByte, step: s, bytes: prefix + 40 + len(msgs[i])/2, msg: i})
			prefix += 45 + len(msgs[i])
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
	t.Run("imap-without-MOVE/"+mailaccess.MoveTo(archive).String(), func(t *testing.T) {
		t.Parallel()
		// Without MOVE, a move is UID COPY, then UID STORE and UID
		// EXPUNGE. When the copy was answered OK and the deletion then
		// fails, the Fetcher records the copy and the next run only
		// deletes: no second copy. Where the copy's own outcome is
		// unknown, a second copy is within the contract.
		sc := newScenario(mailaccess.MoveTo(archive))
		sc.copyUnknown = func(f fault) bool {
			return f.step.name == "UID COPY" && (f.kind == fAfterExec || f.kind == fAfterByte || f.kind == fStall)
		}
		testFaultAtEveryStepOf(t, "imap", newIMAPMemNoMove, sc)
	})
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

// scenario is what a faulted run works on. For KeepFor, a clean run at
// t0 first delivers the messages of pre; more messages arrive; the
// faulted run and the rerun, two hours later, delete the expired ones and
// deliver (and keep) the new ones. For the other retentions the faulted
// run is the first.
type scenario struct {
	ret  mailaccess.Retention
	pre  [][]byte // delivered by a clean run at t0, before the fault
	more [][]byte // arrive after that run
	conn int      // the faulted connection
	at   time.Time
	// copyUnknown, when set, reports the faults after which the client
	// cannot know whether a UID COPY was carried out; the next run may
	// then copy again, and a second copy in the target folder is within
	// the contract.
	copyUnknown func(fault) bool
}

func (sc scenario) all() [][]byte { return append(append([][]byte(nil), sc.pre...), sc.more...) }

func newScenario(ret mailaccess.Retention) scenario {
	if ret.Period() > 0 { // keep-for
		msgs := corpus(5, "step")
		return scenario{ret: ret, pre: msgs[:3], more: msgs[3:], conn: 2, at: t0.Add(2 * time.Hour)}
	}
	return scenario{ret: ret, more: corpus(4, "step"), conn: 1, at: t0}
}

// prepare seeds s and runs the clean run of pre.
func (sc scenario) prepare(ctx context.Context, s memServer, st mailaccess.State, l *ledger) error {
	s.seed(sc.pre)
	if len(sc.pre) > 0 {
		if err := runOnce(ctx, s, sc.ret, st, l, 10*time.Second, t0); err != nil {
			return fmt.Errorf("clean run before the fault: %w", err)
		}
	}
	for _, m := range sc.more {
		s.add(m)
	}
	return nil
}

// kept reports whether m must stay on the server under KeepFor.
func (sc scenario) kept(m []byte) bool { return count(sc.more, m) > 0 }

func testFaultAtEveryStep(t *testing.T, protocol string, newServer func(*testing.T) memServer, ret mailaccess.Retention) {
	testFaultAtEveryStepOf(t, protocol, newServer, newScenario(ret))
}

func testFaultAtEveryStepOf(t *testing.T, protocol string, newServer func(*testing.T) memServer, sc scenario) {
	ret := sc.ret
	msgs := sc.all()
	// A clean run gives the conversation.
	rec := newServer(t)
	l := newLedger()
	st := &watchState{State: &mailaccess.MemoryState{}, l: l}
	if err := sc.prepare(t.Context(), rec, st, l); err != nil {
		t.Fatal(err)
	}
	if err := runOnce(t.Context(), rec, ret, st, l, faultTimeout, sc.at); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	steps := rec.steps(sc.conn)
	faults := faultsFor(protocol, steps, msgs)
	var fired atomic.Int64
	jobs := make([]func() error, len(faults))
	for i, f := range faults {
		jobs[i] = func() error {
			err := faultCase(t, newServer, sc, f, &fired)
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
	return runOnceBatch(ctx, s, ret, st, l, timeout, now, mailaccess.Batch{})
}

// runOnceBatch is runOnce with the Fetcher's Batch set to batch.
func runOnceBatch(ctx context.Context, s memServer, ret mailaccess.Retention, st mailaccess.State, l *ledger, timeout time.Duration, now time.Time, batch mailaccess.Batch) error {
	mb, err := s.dial(ctx, timeout)
	if err != nil {
		return err
	}
	_, err = (&mailaccess.Fetcher{Retention: ret, State: st, Now: fixed(now), Batch: batch}).Fetch(ctx, mb, l.handle)
	return err
}

// faultCase runs one fault and checks the invariant. On a loaded machine
// the short Timeout of the faulted run can expire before the conversation
// reaches the fault; such an attempt is checked all the same, and the
// case tried again, up to three times, for the fault to fire.
func faultCase(t *testing.T, newServer func(*testing.T) memServer, sc scenario, f fault, fired *atomic.Int64) error {
	for attempt := 1; ; attempt++ {
		hit, err := faultAttempt(t, newServer, sc, f)
		if err != nil || hit || attempt == 3 {
			if hit {
				fired.Add(1)
			}
			return err
		}
	}
}

func faultAttempt(t *testing.T, newServer func(*testing.T) memServer, sc scenario, f fault) (fired bool, err error) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	msgs := sc.all()
	s := newServer(t)
	l := newLedger()
	st := &watchState{State: &mailaccess.MemoryState{}, l: l}
	if err := sc.prepare(ctx, s, st, l); err != nil {
		return false, err
	}
	var hit atomic.Bool
	s.inject(sc.conn, f, &hit)
	first := runOnce(ctx, s, sc.ret, st, l, faultTimeout, sc.at)
	if err := s.waitIdle(ctx); err != nil {
		return false, fmt.Errorf("server did not end the faulted session: %v", err)
	}
	fired = hit.Load()
	if fired && f.msg >= 0 {
		if n, _ := l.took(sha(msgs[f.msg])); n > 0 {
			return fired, fmt.Errorf("the cut meant for the middle of message %d did not stop its delivery (run: %v)", f.msg, first)
		}
		l.mu.Lock()
		partial := l.partial
		l.mu.Unlock()
		if partial == 0 {
			return fired, fmt.Errorf("the cut meant for the middle of message %d came before the handler had any of it (run: %v)", f.msg, first)
		}
	}
	if err := checkSafe(msgs, s.inbox(), s.folder(), l); err != nil {
		return fired, fmt.Errorf("after the faulted run (%v): %w", first, err)
	}
	err = retry(ctx, func() error { return runOnce(ctx, s, sc.ret, st, l, 10*time.Second, sc.at) })
	if err != nil {
		return fired, fmt.Errorf("clean rerun after %v: %w", first, err)
	}
	copies := 1
	if sc.copyUnknown != nil && sc.copyUnknown(f) {
		copies = 2
	}
	if _, err := checkDoneN(sc.ret, msgs, s.inbox(), s.folder(), l, sc.kept, 0, copies); err != nil {
		return fired, fmt.Errorf("after the faulted run (%v) and a clean rerun: %w", first, err)
	}
	return fired, nil
}
