package mailaccess_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

var errFenced = errors.New("another worker owns this mailbox")

// A Fence that refuses stops every deletion and move: POP3 sends no DELE
// and no QUIT (the session is aborted), IMAP no STORE, EXPUNGE or MOVE,
// and the run returns the Fence's error. The delivered messages are
// recorded, so the next run does not deliver them again.
func TestFenceRefusesDeletion(t *testing.T) {
	t.Run("pop3", func(t *testing.T) {
		s := popServer(t, nil, 3)
		st := &mailaccess.MemoryState{}
		out := &sink{}
		var calls atomic.Int32
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st,
			Fence: func(context.Context) error { calls.Add(1); return errFenced }}
		rep, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle)
		if !errors.Is(err, errFenced) {
			t.Fatalf("Fetch = %v, want the fence's error", err)
		}
		if err := s.WaitIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(s.Messages(user)); n != 3 || rep.Deleted != 0 {
			t.Fatalf("server holds %d messages, report deleted %d; want all 3 kept", n, rep.Deleted)
		}
		cmds := s.Commands()
		if countCommands(cmds, "DELE") != 0 || countCommands(cmds, "QUIT") != 0 {
			t.Fatalf("DELE or QUIT sent past a refusing fence: %v", cmds)
		}
		if calls.Load() != 1 || len(out.got) != 3 {
			t.Fatalf("fence called %d times, %d delivered; want 1 and 3", calls.Load(), len(out.got))
		}
		// The next run, with the fence passing, deletes without delivering.
		f.Fence = func(context.Context) error { calls.Add(1); return nil }
		rep, err = f.Fetch(t.Context(), dialPOP(t, s), out.handle)
		if err != nil || rep.Delivered != 0 || rep.Deleted != 3 || len(s.Messages(user)) != 0 {
			t.Fatalf("second run: %+v, %v; want 3 deleted, none delivered", rep, err)
		}
		if calls.Load() != 3 {
			t.Fatalf("fence called %d times in all, want 3 (once refusing, then before DELE and before QUIT)", calls.Load())
		}
	})
	for _, ret := range []mailaccess.Retention{mailaccess.DeleteAfterFetch, mailaccess.MoveTo("Archive")} {
		t.Run("imap/"+ret.String(), func(t *testing.T) {
			s := imapServer(t, nil, 2)
			s.CreateFolder(user, "Archive")
			out := &sink{}
			f := &mailaccess.Fetcher{Retention: ret, State: &mailaccess.MemoryState{},
				Fence: func(context.Context) error { return errFenced }}
			_, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
			if !errors.Is(err, errFenced) {
				t.Fatalf("Fetch = %v, want the fence's error", err)
			}
			if n := len(s.Messages(user, "INBOX")); n != 2 {
				t.Fatalf("INBOX holds %d messages, want 2", n)
			}
			if n := len(s.Messages(user, "Archive")); n != 0 {
				t.Fatalf("Archive holds %d messages, want 0", n)
			}
			for _, c := range s.Commands() {
				if slices.Contains([]string{"UID STORE", "STORE", "UID EXPUNGE", "EXPUNGE", "UID MOVE", "MOVE", "UID COPY", "COPY"}, c.Name) {
					t.Fatalf("%s sent past a refusing fence", c.Line)
				}
			}
		})
	}
}

// A Fence that passes is called before the deletions and before the
// commit, and the run commits as without it; under KeepOnServer it is
// called once, before the session ends.
func TestFencePasses(t *testing.T) {
	s := imapServer(t, &imaptest.Config{}, 2)
	var calls atomic.Int32
	fence := func(context.Context) error { calls.Add(1); return nil }
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: &mailaccess.MemoryState{}, Fence: fence}
	if _, err := f.Fetch(t.Context(), dialIMAP(t, s), (&sink{}).handle); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("keep: fence called %d times, want 1", calls.Load())
	}
	calls.Store(0)
	f.Retention = mailaccess.DeleteAfterFetch
	s.Append(user, "INBOX", msgs(3)[2])
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), (&sink{}).handle)
	if err != nil || rep.Deleted != 3 || len(s.Messages(user, "INBOX")) != 0 {
		t.Fatalf("delete: %+v, %v; want 3 deleted", rep, err)
	}
	if calls.Load() != 2 {
		t.Fatalf("delete: fence called %d times, want 2", calls.Load())
	}
}
