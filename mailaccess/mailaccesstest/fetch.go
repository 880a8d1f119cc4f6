package mailaccesstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// collector is a Handler that keeps what it is given.
type collector struct {
	mu     sync.Mutex
	got    [][]byte
	counts map[[32]byte]int
	refuse func(body []byte) bool
}

func (c *collector) handle(ctx context.Context, m *mailaccess.Message) error {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	if c.refuse != nil && c.refuse(b) {
		return errors.New("refused by the test")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[[32]byte]int{}
	}
	c.got = append(c.got, b)
	c.counts[sha256.Sum256(b)]++
	return nil
}

func fetch(t testing.TB, s Server, addr string, f *mailaccess.Fetcher, c *collector) (mailaccess.Report, error) {
	t.Helper()
	mb, err := s.Dial(ctxT(t), addr)
	if err != nil {
		return mailaccess.Report{}, err
	}
	return f.Fetch(ctxT(t), mb, c.handle)
}

func mustFetch(t testing.TB, s Server, f *mailaccess.Fetcher, c *collector) mailaccess.Report {
	t.Helper()
	rep, err := fetch(t, s, s.Addr(), f, c)
	if err != nil {
		t.Fatalf("Fetch (%s): %v", f.Retention, err)
	}
	return rep
}

func testKeep(t *testing.T, s Server) {
	msgs := Sample()
	s.Seed(t, msgs)
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: st}
	c := &collector{}
	rep := mustFetch(t, s, f, c)
	if rep.Delivered != len(msgs) || rep.Listed != len(msgs) {
		t.Fatalf("first run: %+v", rep)
	}
	sameMessages(t, "delivered", c.got, msgs)
	sameMessages(t, "server after keep", s.Contents(t), msgs)
	rep = mustFetch(t, s, f, c)
	if rep.Delivered != 0 || rep.Skipped != len(msgs) {
		t.Fatalf("second run: %+v, want nothing delivered", rep)
	}
	// New mail arrives: only it is delivered.
	all := append(slices.Clone(msgs), Message(9))
	s.Seed(t, all)
	c2 := &collector{}
	rep = mustFetch(t, s, f, c2)
	if rep.Delivered != 1 {
		// A server whose Seed renumbers UIDs is reported as a reset and
		// recognised by fingerprint.
		if !(rep.UIDReset && rep.Recognized == len(msgs)) {
			t.Fatalf("run after new mail: %+v", rep)
		}
	}
	sameMessages(t, "delivered after new mail", c2.got, [][]byte{Message(9)})
}

func testDelete(t *testing.T, s Server) {
	msgs := Sample()
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	c := &collector{}
	rep := mustFetch(t, s, f, c)
	if rep.Delivered != len(msgs) || rep.Deleted != len(msgs) {
		t.Fatalf("report: %+v", rep)
	}
	sameMessages(t, "delivered", c.got, msgs)
	if n := len(s.Contents(t)); n != 0 {
		t.Fatalf("server holds %d messages after delete, want 0", n)
	}
	rep = mustFetch(t, s, f, c)
	if rep.Listed != 0 || rep.Delivered != 0 {
		t.Fatalf("second run: %+v", rep)
	}
}

func testKeepFor(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2)}
	s.Seed(t, msgs)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepFor(48 * time.Hour), State: &mailaccess.MemoryState{}, Now: func() time.Time { return now }}
	c := &collector{}
	if rep := mustFetch(t, s, f, c); rep.Delivered != 2 || rep.Deleted != 0 {
		t.Fatalf("day 0: %+v", rep)
	}
	now = now.Add(24 * time.Hour)
	s.Seed(t, append(slices.Clone(msgs), Message(3)))
	if rep := mustFetch(t, s, f, c); rep.Delivered != 1 || rep.Deleted != 0 {
		t.Fatalf("day 1: %+v", rep)
	}
	if n := len(s.Contents(t)); n != 3 {
		t.Fatalf("day 1: server holds %d, want 3", n)
	}
	now = now.Add(24*time.Hour + time.Minute)
	if rep := mustFetch(t, s, f, c); rep.Delivered != 0 || rep.Deleted != 2 {
		t.Fatalf("day 2: %+v, want the two day-0 messages deleted", rep)
	}
	sameMessages(t, "day 2 server", s.Contents(t), [][]byte{Message(3)})
	sameMessages(t, "delivered", c.got, [][]byte{Message(1), Message(2), Message(3)})
	// KeepFor without a State is refused before anything is fetched.
	f2 := &mailaccess.Fetcher{Retention: mailaccess.KeepFor(time.Hour)}
	if _, err := fetch(t, s, s.Addr(), f2, &collector{}); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("KeepFor without State: %v, want ErrInvalidArgument", err)
	}
}

func testMove(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.MoveTo("Archive"), State: &mailaccess.MemoryState{}}
	c := &collector{}
	fs, isFolder := s.(FolderServer)
	mb := dial(t, s)
	_, isMover := mb.(driver.Mover)
	mb.Abort()
	rep, err := fetch(t, s, s.Addr(), f, c)
	if !isMover {
		if !errors.Is(err, mailaccess.ErrUnsupported) || len(c.got) != 0 {
			t.Fatalf("MoveTo on a mailbox without Mover: %v (delivered %d), want ErrUnsupported before any fetch", err, len(c.got))
		}
		sameMessages(t, "server", s.Contents(t), msgs)
		return
	}
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if rep.Moved != 2 || rep.Delivered != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if n := len(s.Contents(t)); n != 0 {
		t.Fatalf("source holds %d after move", n)
	}
	if isFolder {
		sameMessages(t, "Archive", fs.FolderContents(t, "Archive"), msgs)
	}
}

func testHandlerRefuses(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2), Message(3)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	c := &collector{refuse: func(b []byte) bool { return bytes.Equal(b, msgs[1]) }}
	rep, err := fetch(t, s, s.Addr(), f, c)
	if !errors.Is(err, mailaccess.ErrHandler) {
		t.Fatalf("Fetch: %v, want ErrHandler", err)
	}
	if rep.Delivered != 2 || rep.Failed != 1 || rep.Deleted != 2 {
		t.Fatalf("report: %+v", rep)
	}
	sameMessages(t, "server keeps the refused message", s.Contents(t), [][]byte{msgs[1]})
	c.refuse = nil
	rep = mustFetch(t, s, f, c)
	if rep.Delivered != 1 {
		t.Fatalf("second run: %+v", rep)
	}
	sameMessages(t, "delivered", c.got, [][]byte{msgs[0], msgs[2], msgs[1]})
}

func testMaxSize(t *testing.T, s Server) {
	big := crlf("Subject: big\n\n" + strings.Repeat("0123456789abcdef\n", 1000))
	msgs := [][]byte{Message(1), big, Message(3)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}, MaxSize: 4096}
	c := &collector{}
	rep := mustFetch(t, s, f, c)
	if rep.TooLarge != 1 || rep.Delivered != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Problems) != 1 || !errors.Is(rep.Problems[0], mailaccess.ErrTooLarge) {
		t.Fatalf("problems: %v", rep.Problems)
	}
	sameMessages(t, "server keeps the large message", s.Contents(t), [][]byte{big})
}

func testFileState(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2)}
	s.Seed(t, msgs)
	path := filepath.Join(t.TempDir(), "state")
	run := func() mailaccess.Report {
		st, err := mailaccess.OpenFileState(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return mustFetch(t, s, &mailaccess.Fetcher{State: st}, &collector{})
	}
	if rep := run(); rep.Delivered != 2 {
		t.Fatalf("first process: %+v", rep)
	}
	if rep := run(); rep.Delivered != 0 || rep.Skipped != 2 {
		t.Fatalf("second process: %+v, want nothing delivered again", rep)
	}
}

func testUIDReset(t *testing.T, s Server) {
	r, ok := s.(UIDResetter)
	if !ok {
		t.Skip("server cannot renumber UIDs")
	}
	msgs := [][]byte{Message(1), Message(2)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	c := &collector{}
	mustFetch(t, s, f, c)
	r.ResetUIDs(t)
	rep := mustFetch(t, s, f, c)
	if rep.Delivered != 0 || rep.Recognized != 2 || !rep.UIDReset {
		t.Fatalf("after the reset: %+v, want both recognised, none delivered", rep)
	}
	rep = mustFetch(t, s, f, c)
	if rep.Delivered != 0 || rep.Skipped != 2 || rep.UIDReset {
		t.Fatalf("run after the reset run: %+v", rep)
	}
	sameMessages(t, "delivered", c.got, msgs)
}
