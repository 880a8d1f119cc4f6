package mailaccess_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/pop/poptest"
)

// plainState is a State without the incremental methods.
type plainState struct{ s *countingState }

func (p plainState) Records(ctx context.Context, mb string) ([]mailaccess.Record, error) {
	return p.s.Records(ctx, mb)
}
func (p plainState) Put(ctx context.Context, mb string, recs ...mailaccess.Record) error {
	return p.s.Put(ctx, mb, recs...)
}
func (p plainState) Forget(ctx context.Context, mb string, uids ...mailaccess.UID) error {
	return p.s.Forget(ctx, mb, uids...)
}

// planCase is one mailbox of TestPlanMatrix.
type planCase struct {
	proto string // "imap", "pop3" or "pop3-nouidl"
	imap  *imaptest.Server
	pop   *poptest.Server
}

func (c *planCase) dial(t *testing.T) mailaccess.Mailbox {
	if c.imap != nil {
		return dialIMAP(t, c.imap)
	}
	return dialPOP(t, c.pop)
}

func (c *planCase) add(i int) {
	if c.imap != nil {
		c.imap.Append(user, "INBOX", mailaccesstest.Message(i))
	} else {
		c.pop.AddMessage(user, mailaccesstest.Message(i))
	}
}

// resetUIDs renumbers the mailbox: a new UIDVALIDITY, or new UIDLs.
func (c *planCase) resetUIDs() {
	if c.imap != nil {
		c.imap.ResetUIDValidity(user, "INBOX")
	} else {
		c.pop.RenumberUIDs(user)
	}
}

// fullListings counts the listings of every message (UID FETCH 1:*).
func (c *planCase) fullListings() int {
	n := 0
	if c.imap != nil {
		for _, cmd := range c.imap.Commands() {
			if cmd.Name == "UID FETCH" && strings.Contains(cmd.Line, " 1:* ") && strings.Contains(cmd.Line, "RFC822.SIZE") {
				n++
			}
		}
	}
	return n
}

// TestPlanMatrix runs the listing plan against real protocol peers, case
// by case: every retention, a mailbox that lists after a UID (IMAP) or
// not (POP3), no State, a plain State or an IncrementalState, UIDs renumbered
// between the runs or not, and a server without stable UIDs (POP3 without
// UIDL). Two runs: the first takes three messages, then two arrive (and
// the UIDs may be renumbered), and the second must deliver exactly what
// is new, list incrementally exactly when the plan allows it, read every
// record only when it must, and keep a mark only where it is used.
func TestPlanMatrix(t *testing.T) {
	rets := []mailaccess.Retention{mailaccess.KeepOnServer, mailaccess.DeleteAfterFetch, mailaccess.KeepFor(time.Hour), mailaccess.MoveTo("Archive")}
	for _, proto := range []string{"imap", "pop3", "pop3-nouidl"} {
		for _, ret := range rets {
			for _, stateKind := range []string{"none", "plain", "incremental"} {
				for _, reset := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/%s/reset=%v", proto, ret, stateKind, reset)
					t.Run(name, func(t *testing.T) { testPlanCase(t, proto, ret, stateKind, reset) })
				}
			}
		}
	}
}

func testPlanCase(t *testing.T, proto string, ret mailaccess.Retention, stateKind string, reset bool) {
	c := &planCase{proto: proto}
	switch proto {
	case "imap":
		c.imap = imapServer(t, nil, 3)
		c.imap.CreateFolder(user, "Archive")
	case "pop3":
		c.pop = popServer(t, nil, 3)
	default:
		c.pop = popServer(t, &poptest.Config{NoUIDL: true}, 3)
	}
	counting := &countingState{MemoryState: &mailaccess.MemoryState{}}
	var st mailaccess.State
	switch stateKind {
	case "plain":
		st = plainState{counting}
	case "incremental":
		st = counting
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &mailaccess.Fetcher{Retention: ret, State: st, Now: func() time.Time { return now }}
	counts := map[[32]byte]int{}
	h := func(ctx context.Context, m *mailaccess.Message) error {
		b, err := readAll(m)
		counts[sha256.Sum256(b)]++
		return err
	}

	rep, err := f.Fetch(t.Context(), c.dial(t), h)
	// The cases the Fetcher refuses before anything is fetched.
	switch {
	case ret == mailaccess.MoveTo("Archive") && proto != "imap":
		if !errors.Is(err, mailaccess.ErrUnsupported) || len(counts) != 0 {
			t.Fatalf("move on POP3: %v, %d delivered", err, len(counts))
		}
		return
	case ret == mailaccess.KeepFor(time.Hour) && st == nil:
		if !errors.Is(err, mailaccess.ErrInvalidArgument) || len(counts) != 0 {
			t.Fatalf("keep-for without a State: %v", err)
		}
		return
	case proto == "pop3-nouidl" && ret != mailaccess.DeleteAfterFetch:
		if !errors.Is(err, mailaccess.ErrUnsupported) || len(counts) != 0 {
			t.Fatalf("%s without UIDL: %v", ret, err)
		}
		return
	}
	if err != nil || rep.Delivered != 3 {
		t.Fatalf("first run: %+v, %v", rep, err)
	}
	keeps := ret == mailaccess.KeepOnServer || ret == mailaccess.KeepFor(time.Hour)
	incremental := proto == "imap" && stateKind == "incremental" && keeps

	c.add(4)
	c.add(5)
	if reset {
		c.resetUIDs()
	}
	listingsBefore, readsBefore := c.fullListings(), counting.records.Load()
	now = now.Add(time.Minute) // KeepFor's hour has not passed
	rep, err = f.Fetch(t.Context(), c.dial(t), h)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}

	wantDelivered := 2
	if st == nil && ret == mailaccess.KeepOnServer {
		wantDelivered = 5 // no memory: everything again
	}
	if rep.Delivered != wantDelivered {
		t.Fatalf("second run delivered %d, want %d: %+v", rep.Delivered, wantDelivered, rep)
	}
	if st != nil && keeps && reset && (rep.Recognized != 3 || !rep.UIDReset) {
		t.Fatalf("after renumbering: %d recognised (want 3), UIDReset %v", rep.Recognized, rep.UIDReset)
	}
	for i := 1; i <= 5; i++ {
		want := 1
		if wantDelivered == 5 && i <= 3 {
			want = 2
		}
		if n := counts[sha256.Sum256(mailaccesstest.Message(i))]; n != want {
			t.Fatalf("message %d delivered %d times, want %d", i, n, want)
		}
	}

	full := c.fullListings() - listingsBefore
	wantIncremental := incremental && !reset
	if proto == "imap" && (full == 0) != wantIncremental {
		t.Fatalf("second run: %d full listings; incremental listing expected: %v", full, wantIncremental)
	}
	reads := counting.records.Load() - readsBefore
	wantLookupOnly := wantIncremental && ret == mailaccess.KeepOnServer
	if st != nil && (reads == 0) != wantLookupOnly {
		t.Fatalf("second run read every record %d times; lookups only expected: %v", reads, wantLookupOnly)
	}
	mark, _ := counting.Mark(t.Context(), rep.Mailbox)
	if (mark != "") != incremental {
		t.Fatalf("mark %q; a mark is kept only on the incremental plan (%v)", mark, incremental)
	}
}
