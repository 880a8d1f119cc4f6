package reliability

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

const (
	user     = "alice"
	password = "alice-password"
	archive  = "Archive"
)

// long reports whether the large variants run (UNIMAIL_LONG=1).
func long() bool { return os.Getenv("UNIMAIL_LONG") == "1" }

type sum = [sha256.Size]byte

func sha(b []byte) sum { return sha256.Sum256(b) }

// corpus returns n distinct CRLF messages of varied sizes (some above a
// few kilobytes, so that a transfer can be cut in its middle), with lines
// that start with dots for POP3's dot-stuffing.
func corpus(n int, tag string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var b strings.Builder
		fmt.Fprintf(&b, "From: sender@example.com\r\nTo: alice@example.com\r\nSubject: %s %d\r\nMessage-ID: <%d.%s@reliability.example>\r\n\r\n", tag, i, i, tag)
		b.WriteString(".leading dot\r\n..two dots\r\n.\r\n")
		lines := 4 + (i*37)%120
		for l := 0; l < lines; l++ {
			fmt.Fprintf(&b, "line %d of message %d %s\r\n", l, i, strings.Repeat("x", 40))
		}
		out[i] = []byte(b.String())
	}
	return out
}

// ledger remembers what a handler took (returned nil for) and what the
// State recorded, by fingerprint.
type ledger struct {
	mu        sync.Mutex
	delivered map[sum]int
	recorded  map[sum]bool
	// partial counts the messages whose body failed after some bytes.
	partial int
}

func newLedger() *ledger {
	return &ledger{delivered: map[sum]int{}, recorded: map[sum]bool{}}
}

// handle is a Handler that reads the whole message before taking it, as
// a careful program does.
func (l *ledger) handle(_ context.Context, m *mailaccess.Message) error {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		if len(b) > 0 {
			l.mu.Lock()
			l.partial++
			l.mu.Unlock()
		}
		return err
	}
	l.mu.Lock()
	l.delivered[sha256.Sum256(b)]++
	l.mu.Unlock()
	return nil
}

func (l *ledger) took(s sum) (n int, recorded bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered[s], l.recorded[s]
}

// watchState wraps a State and tells the ledger what it recorded. With
// failAfter > 0, Puts after the first failAfter ones fail, as on a full
// disk.
type watchState struct {
	mailaccess.State
	l         *ledger
	mu        sync.Mutex
	puts      int
	failAfter int
}

var errDiskFull = errors.New("no space left on device (simulated)")

func (w *watchState) Put(ctx context.Context, mailbox string, recs ...mailaccess.Record) error {
	w.mu.Lock()
	w.puts++
	fail := w.failAfter > 0 && w.puts > w.failAfter
	w.mu.Unlock()
	if fail {
		return errDiskFull
	}
	if err := w.State.Put(ctx, mailbox, recs...); err != nil {
		return err
	}
	w.l.mu.Lock()
	for _, r := range recs {
		w.l.recorded[r.SHA256] = true
	}
	w.l.mu.Unlock()
	return nil
}

// count returns how many of the messages in set are equal to m.
func count(set [][]byte, m []byte) int {
	s := sha256.Sum256(m)
	n := 0
	for _, b := range set {
		if len(b) == len(m) && sha256.Sum256(b) == s {
			n++
		}
	}
	return n
}

// tally counts the messages of set by content.
func tally(set [][]byte) map[sum]int {
	t := make(map[sum]int, len(set))
	for _, b := range set {
		t[sha256.Sum256(b)]++
	}
	return t
}

// errTwice marks a message seen twice on the server, which a real server
// shows for a moment while another session moves it (copy, then
// expunge).
var errTwice = errors.New("duplicated on the server")

// settled runs check until it passes or fails for another reason than
// errTwice, for up to two seconds: a session of a cut connection may
// still be finishing a move on the server.
func settled(check func() error) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := check()
		if !errors.Is(err, errTwice) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkSafe is the core invariant, valid at any moment: every seeded
// message is on the server (inbox, or the archive folder under MoveTo)
// exactly once, or was delivered and recorded; the server holds nothing
// that was not seeded, and no message twice.
func checkSafe(msgs, inbox, folder [][]byte, l *ledger) error {
	return checkSafeN(msgs, inbox, folder, l, 1)
}

// checkSafeN is checkSafe with up to copies copies of a message in the
// other folder.
func checkSafeN(msgs, inbox, folder [][]byte, l *ledger, copies int) error {
	seen := map[sum]bool{}
	for _, m := range msgs {
		seen[sha256.Sum256(m)] = true
	}
	for _, set := range [][][]byte{inbox, folder} {
		for _, b := range set {
			if !seen[sha256.Sum256(b)] {
				return fmt.Errorf("the server holds a message that was never seeded (%d bytes)", len(b))
			}
		}
	}
	in, fo := tally(inbox), tally(folder)
	for i, m := range msgs {
		// Once in each folder is a move under way (copied, not yet
		// expunged: a server without MOVE, or a real server finishing a
		// cut session's move); twice in one folder is a duplicate.
		on := in[sha(m)] + fo[sha(m)]
		if in[sha(m)] > 1 || fo[sha(m)] > copies {
			return fmt.Errorf("message %d is %d times in the inbox and %d times in the other folder: %w", i, in[sha(m)], fo[sha(m)], errTwice)
		}
		if on == 0 {
			n, rec := l.took(sha256.Sum256(m))
			if n == 0 || !rec {
				return fmt.Errorf("LOST: message %d is gone from the server but was delivered %d times and recorded=%v", i, n, rec)
			}
		}
	}
	return nil
}

// checkDone checks the end of a scenario, after a clean run: every
// message delivered at least once and at most once plus maxDup in total,
// and the server holding what the retention says. keptUntil says, for
// KeepFor, which messages must still be on the server. It returns the
// number of duplicate deliveries.
func checkDone(ret mailaccess.Retention, msgs, inbox, folder [][]byte, l *ledger, kept func(m []byte) bool, maxDup int) (dups int, err error) {
	return checkDoneN(ret, msgs, inbox, folder, l, kept, maxDup, 1)
}

// checkDoneN is checkDone with up to copies copies of each message in the
// target folder of MoveTo.
func checkDoneN(ret mailaccess.Retention, msgs, inbox, folder [][]byte, l *ledger, kept func(m []byte) bool, maxDup, copies int) (dups int, err error) {
	if err := checkSafeN(msgs, inbox, folder, l, copies); err != nil {
		return 0, err
	}
	for i, m := range msgs {
		n, _ := l.took(sha256.Sum256(m))
		if n == 0 {
			return 0, fmt.Errorf("message %d was never delivered by the clean run", i)
		}
		dups += n - 1
	}
	if dups > maxDup {
		return dups, fmt.Errorf("%d duplicate deliveries, bound %d", dups, maxDup)
	}
	switch {
	case ret == mailaccess.KeepOnServer:
		if len(inbox) != len(msgs) {
			return dups, fmt.Errorf("keep: the server holds %d messages, want %d", len(inbox), len(msgs))
		}
	case ret == mailaccess.DeleteAfterFetch:
		if len(inbox) != 0 {
			return dups, fmt.Errorf("delete: the server still holds %d messages", len(inbox))
		}
	case ret.Period() > 0: // keep-for
		for i, m := range msgs {
			want := 0
			if kept(m) {
				want = 1
			}
			if got := count(inbox, m); got != want {
				return dups, fmt.Errorf("keep-for: message %d is %d times on the server, want %d", i, got, want)
			}
		}
	case ret.Folder() != "": // move
		fo := tally(folder)
		for i, m := range msgs {
			if fo[sha(m)] < 1 || fo[sha(m)] > copies {
				return dups, fmt.Errorf("move: message %d is %d times in %s, want 1 to %d", i, fo[sha(m)], ret.Folder(), copies)
			}
		}
		if len(inbox) != 0 {
			return dups, fmt.Errorf("move: the inbox still holds %d messages", len(inbox))
		}
	}
	return dups, nil
}

// retentions are the retentions every scenario runs with (MoveTo only on
// IMAP).
func retentions(protocol string) []mailaccess.Retention {
	rs := []mailaccess.Retention{mailaccess.KeepOnServer, mailaccess.DeleteAfterFetch, mailaccess.KeepFor(time.Hour)}
	if protocol == "imap" {
		rs = append(rs, mailaccess.MoveTo(archive))
	}
	return rs
}

// retry runs f until it succeeds, fails for a reason that is not
// temporary, or the deadline passes; POP3 servers keep a maildrop locked
// for a moment after a dropped connection.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil || !mailaccess.IsTemporary(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// parallel runs the jobs with at most n at a time and returns their
// errors (nil for the ones that passed), in order.
func parallel(n int, jobs []func() error) []error {
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = job()
		}()
	}
	wg.Wait()
	return errs
}

// TestCheckerCatchesLoss makes sure the invariant checks can fail: a
// client that deletes before delivering loses mail, and a message taken
// twice is a duplicate.
func TestCheckerCatchesLoss(t *testing.T) {
	s := newPopMem(t)
	msgs := corpus(3, "checker")
	s.seed(msgs)
	mb, err := s.dial(t.Context(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(t.Context(), list[0].UID); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	if err := checkSafe(msgs, s.inbox(), nil, l); err == nil || !strings.Contains(err.Error(), "LOST") {
		t.Fatalf("a message deleted without delivery: checkSafe said %v", err)
	}
	for _, m := range msgs {
		l.delivered[sha(m)]++
		l.recorded[sha(m)] = true
	}
	l.delivered[sha(msgs[1])]++
	if _, err := checkDone(mailaccess.KeepOnServer, msgs, msgs, nil, l, nil, 0); err == nil {
		t.Fatal("a duplicate delivery passed checkDone")
	}
	if n, err := checkDone(mailaccess.KeepOnServer, msgs, msgs, nil, l, nil, 1); err != nil || n != 1 {
		t.Fatalf("one duplicate within a bound of one: %d, %v", n, err)
	}
	if _, err := checkDone(mailaccess.DeleteAfterFetch, msgs, msgs[:1], nil, l, nil, 1); err == nil {
		t.Fatal("delete: a message left on the server passed checkDone")
	}
}
