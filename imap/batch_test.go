package imap_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// bodyFetches returns the UID FETCH command lines that asked for bodies.
func bodyFetches(s *imaptest.Server) []string {
	var out []string
	for _, c := range s.Commands() {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK[]") {
			out = append(out, c.Line)
		}
	}
	return out
}

// seed puts n messages of varied sizes into s's INBOX; every tenth is
// large (30000 octets) when large is set.
func seed(s *imaptest.Server, n int, large bool) [][]byte {
	var raws [][]byte
	for i := range n {
		size := 200 + (i*397)%3000
		if large && i%10 == 9 {
			size = 30000
		}
		raw := message(i, size)
		s.Append(user, "INBOX", raw)
		raws = append(raws, raw)
	}
	return raws
}

func TestWillOpenBatches(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 120, true)
	o := options(s)
	o.ChunkSize = 8000 // every tenth message is fetched in chunks
	mb := dial(t, s, o)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, raws[i]) {
			t.Fatalf("message %d: got %d bytes, want %d, not byte-exact", i, len(got), len(raws[i]))
		}
	}
	// 12 large messages in 4 chunks each, and at most 13 windows for the
	// runs of small messages between them.
	fetches := bodyFetches(s)
	var chunks, windows int
	for _, l := range fetches {
		if strings.Contains(l, "BODY.PEEK[]<") {
			chunks++
		} else {
			windows++
		}
	}
	if chunks != 12*4 || windows > 13 {
		t.Fatalf("%d chunk fetches and %d windows, want 48 and at most 13:\n%s", chunks, windows, strings.Join(fetches, "\n"))
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A window holds at most 256 runs of consecutive UIDs, so that its
// command line stays short however sparse the UIDs: every other message
// of 600 (300 runs) takes two windows; all 600 (one run) take one.
func TestWillOpenWindowLimits(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 600, false)
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var every2 []mailaccess.UID
	for i := 0; i < len(list); i += 2 {
		every2 = append(every2, list[i].UID)
	}
	mb.WillOpen(every2...)
	for i := 0; i < len(list); i += 2 {
		if got := readAll(t, mb, list[i].UID); !bytes.Equal(got, raws[i]) {
			t.Fatalf("message %d not byte-exact", i)
		}
	}
	f := bodyFetches(s)
	if len(f) != 2 {
		t.Fatalf("%d body fetches for 300 runs, want 2:\n%s", len(f), strings.Join(f, "\n"))
	}
	for _, l := range f {
		if len(l) > 8<<10 {
			t.Fatalf("a window's command line is %d octets", len(l))
		}
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, raws[i]) {
			t.Fatalf("message %d not byte-exact", i)
		}
	}
	if f := bodyFetches(s); len(f) != 3 {
		t.Fatalf("%d body fetches in all, want 3 (one more for a single run):\n%s", len(f), strings.Join(f, "\n"))
	}
}

func TestWillOpenSkipsUnopened(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 30, false)
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	for i := 0; i < 20; i += 3 {
		if got := readAll(t, mb, list[i].UID); !bytes.Equal(got, raws[i]) {
			t.Fatalf("message %d not byte-exact", i)
		}
	}
	// A message opened out of the announcement's order: fetched on its
	// own, after the batch in flight.
	if got := readAll(t, mb, list[1].UID); !bytes.Equal(got, raws[1]) {
		t.Fatal("message 1 not byte-exact")
	}
	// A partly read message, then more of the announcement.
	r, err := mb.Open(t.Context(), list[21].UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, mb, list[25].UID); !bytes.Equal(got, raws[25]) {
		t.Fatal("message 25 not byte-exact")
	}
	// Other commands after an unfinished announcement.
	if l, err := mb.List(t.Context()); err != nil || len(l) != 30 {
		t.Fatalf("List = %d, %v", len(l), err)
	}
	if err := mb.Delete(t.Context(), list[0].UID); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	if got := readAll(t, mb, list[0].UID); !bytes.Equal(got, raws[0]) {
		t.Fatal("message 0 not byte-exact")
	}
	// Close with a window in flight: it is read to its end, then the
	// commit goes through.
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages(user, "INBOX")); n != 29 {
		t.Fatalf("%d messages left, want 29", n)
	}
}

func TestWillOpenVanished(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 10, false)
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other := dial(t, s, nil)
	if err := other.Delete(t.Context(), list[0].UID, list[4].UID, list[9].UID); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		r, err := mb.Open(t.Context(), info.UID)
		if i == 0 || i == 4 || i == 9 {
			if !errors.Is(err, mailaccess.ErrNotFound) {
				t.Fatalf("Open of expunged message %d = %v, want ErrNotFound", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(b, raws[i]) {
			t.Fatalf("message %d: %v, byte-exact %v", i, err, bytes.Equal(b, raws[i]))
		}
	}
}

func TestWillOpenDropMidBatch(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK[]") {
			return imaptest.Fault{DropAfterBytes: 9000}
		}
		return imaptest.Fault{}
	}})
	raws := seed(s, 20, false)
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	var failed bool
	for i, info := range list {
		r, err := mb.Open(t.Context(), info.UID)
		if err != nil {
			if !errors.Is(err, mailaccess.ErrConnection) {
				t.Fatalf("Open %d = %v, want ErrConnection", i, err)
			}
			failed = true
			break
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			if !errors.Is(err, mailaccess.ErrConnection) {
				t.Fatalf("Read %d = %v, want ErrConnection", i, err)
			}
			failed = true
			break
		}
		if !bytes.Equal(b, raws[i]) {
			t.Fatalf("message %d reported complete but is %d of %d bytes", i, len(b), len(raws[i]))
		}
	}
	if !failed {
		t.Fatal("every message came through a connection cut after 9000 bytes")
	}
	inTime(t, 5*time.Second, "Close", func() { mb.Close(t.Context()) })
}

func TestWillOpenAbortAndCancel(t *testing.T) {
	s := newServer(t, nil)
	seed(s, 40, false)
	for _, how := range []string{"abort", "cancel", "close-cancelled"} {
		t.Run(how, func(t *testing.T) {
			mb := dial(t, s, nil)
			list, err := mb.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			mb.WillOpen(uids(list)...)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r, err := mb.Open(ctx, list[0].UID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "abort":
				inTime(t, 5*time.Second, "Abort", func() { mb.Abort() })
				if _, err := io.ReadAll(r); err == nil {
					t.Fatal("Read after Abort succeeded")
				}
			case "cancel":
				cancel()
				inTime(t, 5*time.Second, "Read after cancel", func() {
					if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
						t.Errorf("Read after cancel = %v, want context.Canceled", err)
					}
				})
				r.Close()
				inTime(t, 5*time.Second, "Abort", func() { mb.Abort() })
			case "close-cancelled":
				r.Close()
				cctx, ccancel := context.WithCancel(t.Context())
				ccancel()
				inTime(t, 5*time.Second, "Close", func() { mb.Close(cctx) })
			}
		})
	}
}

// TestWillOpenSlowCaller checks that a message that waits in a
// window while the caller is busy is not cut by a read deadline.
func TestWillOpenSlowCaller(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 3, false)
	o := options(s)
	o.Timeout = 100 * time.Millisecond
	mb := dial(t, s, o)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		time.Sleep(200 * time.Millisecond) // longer than Timeout, between messages
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, raws[i]) {
			t.Fatalf("message %d not byte-exact", i)
		}
	}
}

func TestWillOpenFetcher(t *testing.T) {
	s := newServer(t, nil)
	raws := seed(s, 50, true)
	o := options(s)
	o.ChunkSize = 10000
	mb := dial(t, s, o)
	var got [][]byte
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch}
	rep, err := f.Fetch(t.Context(), mb, func(ctx context.Context, m *mailaccess.Message) error {
		b, err := io.ReadAll(m.Body)
		got = append(got, b)
		return err
	})
	if err != nil || rep.Delivered != 50 || rep.Deleted != 50 {
		t.Fatalf("Fetch = %+v, %v", rep, err)
	}
	for i := range raws {
		if !bytes.Equal(got[i], raws[i]) {
			t.Fatalf("message %d not byte-exact", i)
		}
	}
	if n := len(s.Messages(user, "INBOX")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
	var _ driver.Prefetcher = (*imap.Mailbox)(nil)
}

// inTime fails the test if f does not return within d.
func inTime(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
