package mailaccess_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// windowFetches returns the ranges of the listings (UID FETCH of UID and
// RFC822.SIZE) that the server received since its first n commands, such
// as "1:4" or "9:*".
func windowFetches(s *imaptest.Server, n int) []string {
	re := regexp.MustCompile(`^UID FETCH ([0-9]+:[0-9*]+) \(UID RFC822\.SIZE\)`)
	var out []string
	for _, c := range s.Commands()[n:] {
		if m := re.FindStringSubmatch(c.Line[bytes.IndexByte([]byte(c.Line), ' ')+1:]); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// A first run into an empty State lists the mailbox a window at a time
// and delivers every message once, in order, whatever the windows (gaps
// in the UIDs included); the mark ends at the last message, and the next
// run finds nothing new.
func TestWindowedFirstRun(t *testing.T) {
	defer mailaccess.SetListWindow(4)()
	s := imapServer(t, nil, 20)
	// A gap: UIDs 6 to 13 expunged by another client.
	mb := dialIMAP(t, s)
	var gone []mailaccess.UID
	list, _ := mb.List(t.Context())
	for _, m := range list[5:13] {
		gone = append(gone, m.UID)
	}
	if err := mb.Delete(t.Context(), gone...); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := append(msgs(20)[:5:5], msgs(20)[13:]...)

	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st}
	var progress []mailaccess.Progress
	f.Progress = func(p mailaccess.Progress) { progress = append(progress, p) }
	var k sink
	n0 := len(s.Commands())
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), k.handle)
	if err != nil || rep.Delivered != len(want) || rep.Listed != len(want) {
		t.Fatalf("first run: %+v, %v", rep, err)
	}
	for i := range want {
		if !bytes.Equal(k.got[i], want[i]) {
			t.Fatalf("message %d differs or out of order", i)
		}
	}
	if got := fmt.Sprint(windowFetches(s, n0)); got != "[1:4 5:8 9:12 13:16 17:*]" {
		t.Fatalf("listings %s, want four windows and the rest", got)
	}
	if last := progress[len(progress)-1]; last.Messages != int64(len(want)) || last.DoneMessages != int64(len(want)) {
		t.Fatalf("progress at the end: %+v", last)
	}
	if mark, _ := st.Mark(t.Context(), rep.Mailbox); mark != list[19].UID {
		t.Fatalf("mark %q, want %q", mark, list[19].UID)
	}
	n0 = len(s.Commands())
	k.got = nil
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), k.handle)
	if err != nil || rep.Delivered != 0 || len(k.got) != 0 || len(windowFetches(s, n0)) != 0 {
		t.Fatalf("second run: %+v, %v, listings %v", rep, err, windowFetches(s, n0))
	}
}

// A message refused in one window does not stop the windows after it,
// but the mark stays before it, so the next run offers it again, and only
// it.
func TestWindowedRefusalHoldsTheMark(t *testing.T) {
	defer mailaccess.SetListWindow(3)()
	s := imapServer(t, nil, 10)
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st}
	refuse := msgs(10)[4]
	var k sink
	_, err := f.Fetch(t.Context(), dialIMAP(t, s), func(ctx context.Context, m *mailaccess.Message) error {
		b, _ := readAll(m)
		if bytes.Equal(b, refuse) {
			return errors.New("not now")
		}
		k.got = append(k.got, b)
		return nil
	})
	if !errors.Is(err, mailaccess.ErrHandler) || len(k.got) != 9 {
		t.Fatalf("first run: %v, %d delivered", err, len(k.got))
	}
	mb := dialIMAP(t, s)
	list, _ := mb.List(t.Context())
	mb.Abort()
	if mark, _ := st.Mark(t.Context(), mb.Name()); mark != list[3].UID {
		t.Fatalf("mark %q, want %q (the message before the refused one)", mark, list[3].UID)
	}
	k.got = nil
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), k.handle)
	if err != nil || rep.Delivered != 1 || !bytes.Equal(k.got[0], refuse) {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}

// A run that stops in the middle of its windows (the caller's context
// ends) loses nothing: the next run delivers the rest, and nothing that
// was recorded is delivered again.
func TestWindowedRunInterrupted(t *testing.T) {
	defer mailaccess.SetListWindow(4)()
	s := imapServer(t, nil, 17)
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st, Batch: mailaccess.Batch{Messages: 1}}
	ctx, cancel := context.WithCancel(t.Context())
	seen := map[string]int{}
	handle := func(ctx context.Context, m *mailaccess.Message) error {
		b, err := readAll(m)
		seen[string(b)]++
		if len(seen) == 10 {
			cancel()
		}
		return err
	}
	if _, err := f.Fetch(ctx, dialIMAP(t, s), handle); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := f.Fetch(t.Context(), dialIMAP(t, s), handle); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs(17) {
		if n := seen[string(m)]; n != 1 {
			t.Fatalf("message %d delivered %d times", i, n)
		}
	}
}

// Mail that arrives while the windows are listed is taken by the last
// window, which asks for everything after it.
func TestWindowedArrivals(t *testing.T) {
	defer mailaccess.SetListWindow(2)()
	s := imapServer(t, nil, 5)
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st}
	var k sink
	more := mailaccesstest.Message(99)
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), func(ctx context.Context, m *mailaccess.Message) error {
		if len(k.got) == 0 {
			s.Append(user, "INBOX", more)
		}
		return k.handle(ctx, m)
	})
	if err != nil || rep.Delivered != 6 || !bytes.Equal(k.got[5], more) {
		t.Fatalf("%+v, %v, %d delivered", rep, err, len(k.got))
	}
}
