// Package mailaccesstest is the conformance suite that every
// mailaccess.Mailbox implementation passes, in the spirit of
// testing/fstest.TestFS: a driver's tests call Run with a Server that
// seeds and inspects a real mail drop, and the suite checks listing,
// byte-exact fetching, every retention through the Fetcher, commit and
// abort, a dropped connection at every step (nothing lost, nothing
// delivered twice), state resumption across sessions, UID resets and a
// large message.
//
// Connections go through a fault-injecting TCP proxy, so the suite needs
// no knowledge of the protocol to cut a conversation at every command and
// response boundary.
package mailaccesstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/faultproxy"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// Server is a mail server holding one mail drop, as seen by the suite.
type Server interface {
	// Seed replaces the content of the mail drop with msgs, in order.
	// Messages use CRLF line ends and end with CRLF.
	Seed(t testing.TB, msgs [][]byte)
	// Contents returns the raw bytes of the messages now in the mail drop,
	// in order.
	Contents(t testing.TB) [][]byte
	// Addr is the server's host:port.
	Addr() string
	// Dial opens a Mailbox on the mail drop through addr, which is either
	// Addr or the address of a proxy in front of it.
	Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error)
}

// FolderServer is a Server with more than one folder; the suite then
// checks MoveTo.
type FolderServer interface {
	Server
	// FolderContents returns the raw bytes of the messages in folder.
	FolderContents(t testing.TB, folder string) [][]byte
}

// UIDResetter is a Server that can renumber the UIDs of its mail drop
// (an IMAP UIDVALIDITY change, a POP3 server that renumbers UIDLs).
type UIDResetter interface {
	Server
	// ResetUIDs gives every message in the mail drop a new UID.
	ResetUIDs(t testing.TB)
}

// Options tunes Run.
type Options struct {
	// LargeSize is the size of the large-message test; 0 means 20 MiB.
	LargeSize int
	// Short skips the slower parts: the large message and the cut at every
	// boundary (only a sample of cut points is tried).
	Short bool
}

// Run runs the conformance suite. newServer is called once per subtest
// and must return a Server whose mail drop may be seeded freely.
func Run(t *testing.T, newServer func(t *testing.T) Server, opts *Options) {
	if opts == nil {
		opts = &Options{}
	}
	t.Run("ListAndOpen", func(t *testing.T) { testListAndOpen(t, newServer(t)) })
	t.Run("NameIsStable", func(t *testing.T) { testName(t, newServer(t)) })
	t.Run("DeleteCommit", func(t *testing.T) { testDeleteCommit(t, newServer(t)) })
	t.Run("DeleteAbort", func(t *testing.T) { testDeleteAbort(t, newServer(t)) })
	t.Run("OpenGone", func(t *testing.T) { testOpenGone(t, newServer(t)) })
	t.Run("RetentionKeep", func(t *testing.T) { testKeep(t, newServer(t)) })
	t.Run("RetentionDelete", func(t *testing.T) { testDelete(t, newServer(t)) })
	t.Run("RetentionKeepFor", func(t *testing.T) { testKeepFor(t, newServer(t)) })
	t.Run("RetentionMove", func(t *testing.T) { testMove(t, newServer(t)) })
	t.Run("HandlerRefuses", func(t *testing.T) { testHandlerRefuses(t, newServer(t)) })
	t.Run("MaxSize", func(t *testing.T) { testMaxSize(t, newServer(t)) })
	t.Run("StateAcrossSessions", func(t *testing.T) { testFileState(t, newServer(t)) })
	t.Run("UIDReset", func(t *testing.T) { testUIDReset(t, newServer(t)) })
	for _, ret := range []mailaccess.Retention{mailaccess.KeepOnServer, mailaccess.DeleteAfterFetch} {
		t.Run("DropEveryStep/"+ret.String(), func(t *testing.T) { testDrops(t, newServer, ret, opts.Short) })
	}
	t.Run("Large", func(t *testing.T) {
		if opts.Short {
			t.Skip("short: large message skipped")
		}
		size := opts.LargeSize
		if size == 0 {
			size = 20 << 20
		}
		testLarge(t, newServer(t), size)
	})
}

// Sample returns the messages the suite seeds: plain text, lines that
// begin with dots (POP3 dot-stuffing), a lone "." line, 8-bit bytes, a
// long line, and a MIME multipart.
func Sample() [][]byte {
	return [][]byte{
		crlf("From: a@example.com\nTo: b@example.com\nSubject: one\nMessage-ID: <1@example.com>\n\nHello.\n"),
		crlf("From: c@example.com\nSubject: dots\nMessage-ID: <2@example.com>\n\n.\n..\n.leading dot\n...\nend\n"),
		crlf("From: d@example.com\nSubject: =?utf-8?q?caf=C3=A9?=\nMessage-ID: <3@example.com>\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\ncaf\xe9 " + strings.Repeat("x", 1500) + "\n"),
		crlf("From: e@example.com\nSubject: multi\nMessage-ID: <4@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b--\n"),
	}
}

// Message returns a small, distinct CRLF message numbered n.
func Message(n int) []byte {
	return crlf(fmt.Sprintf("From: sender@example.com\nTo: rcpt@example.com\nSubject: message %d\nMessage-ID: <%d.suite@example.com>\n\nThis is message %d.\n", n, n, n))
}

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, s Server) mailaccess.Mailbox {
	t.Helper()
	mb, err := s.Dial(ctxT(t), s.Addr())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { mb.Abort() })
	return mb
}

func readAll(t testing.TB, mb mailaccess.Mailbox, uid mailaccess.UID) []byte {
	t.Helper()
	rc, err := mb.Open(ctxT(t), uid)
	if err != nil {
		t.Fatalf("Open(%s): %v", uid, err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", uid, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("closing %s: %v", uid, err)
	}
	return b
}

func sameMessages(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: message %d differs:\n got %q\nwant %q", what, i, clip(got[i]), clip(want[i]))
		}
	}
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

func testListAndOpen(t *testing.T, s Server) {
	msgs := Sample()
	s.Seed(t, msgs)
	mb := dial(t, s)
	list, err := mb.List(ctxT(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(msgs) {
		t.Fatalf("List: %d messages, want %d", len(list), len(msgs))
	}
	seen := map[mailaccess.UID]bool{}
	for i, m := range list {
		if m.UID == "" || seen[m.UID] {
			t.Fatalf("List: empty or duplicate UID %q", m.UID)
		}
		seen[m.UID] = true
		if m.Size != int64(len(msgs[i])) {
			t.Errorf("List: message %d size %d, want %d", i, m.Size, len(msgs[i]))
		}
	}
	// Open in reverse order, then again: byte-exact each time.
	for _, i := range []int{3, 1, 0, 2, 0} {
		if got := readAll(t, mb, list[i].UID); !bytes.Equal(got, msgs[i]) {
			t.Fatalf("Open(%s): got %q, want %q", list[i].UID, clip(got), clip(msgs[i]))
		}
	}
	// A reader closed before its end leaves the session usable.
	rc, err := mb.Open(ctxT(t), list[2].UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close of a half-read message: %v", err)
	}
	if got := readAll(t, mb, list[1].UID); !bytes.Equal(got, msgs[1]) {
		t.Fatalf("after a half-read message: got %q", clip(got))
	}
	if err := mb.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sameMessages(t, "server after a read-only session", s.Contents(t), msgs)
	// UIDs are stable across sessions.
	mb2 := dial(t, s)
	list2, err := mb2.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range list {
		if list2[i].UID != list[i].UID {
			t.Fatalf("UID of message %d changed across sessions: %s then %s", i, list[i].UID, list2[i].UID)
		}
	}
	mb2.Close(ctxT(t))
}

func testName(t *testing.T, s Server) {
	s.Seed(t, nil)
	a := dial(t, s)
	name := a.Name()
	if list, err := a.List(ctxT(t)); err != nil || len(list) != 0 {
		t.Fatalf("List of an empty mail drop: %v, %v", list, err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.Abort(); err != nil {
		t.Fatalf("Abort after Close: %v", err)
	}
	b := dial(t, s)
	defer b.Close(ctxT(t))
	if name == "" || name != b.Name() {
		t.Fatalf("Name: %q and %q, want equal and non-empty", name, b.Name())
	}
	if strings.ContainsAny(name, "\r\n\x00") {
		t.Fatalf("Name %q has control characters", name)
	}
}

func testDeleteCommit(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2), Message(3)}
	s.Seed(t, msgs)
	mb := dial(t, s)
	list, err := mb.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(ctxT(t), list[1].UID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := mb.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sameMessages(t, "after Delete and Close", s.Contents(t), [][]byte{msgs[0], msgs[2]})
}

func testDeleteAbort(t *testing.T, s Server) {
	msgs := [][]byte{Message(1), Message(2), Message(3)}
	s.Seed(t, msgs)
	mb := dial(t, s)
	list, err := mb.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(ctxT(t), list[0].UID, list[1].UID, list[2].UID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	sameMessages(t, "after Delete and Abort", waitContents(t, s, 3), msgs)
}

// waitContents returns the server's contents once it holds n messages
// (a server may finish rolling back a dropped session a moment later).
func waitContents(t testing.TB, s Server, n int) [][]byte {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := s.Contents(t)
		if len(c) == n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testOpenGone(t *testing.T, s Server) {
	s.Seed(t, [][]byte{Message(1), Message(2)})
	mb := dial(t, s)
	list, err := mb.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	mb.Delete(ctxT(t), list[0].UID)
	if err := mb.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	mb2 := dial(t, s)
	if _, err := mb2.List(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, err = mb2.Open(ctxT(t), list[0].UID)
	if !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open of a deleted message: %v, want ErrNotFound", err)
	}
	// The session still works.
	if got := readAll(t, mb2, list[1].UID); !bytes.Equal(got, Message(2)) {
		t.Fatalf("after ErrNotFound: got %q", clip(got))
	}
	mb2.Close(ctxT(t))
}

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

func testLarge(t *testing.T, s Server, size int) {
	var b bytes.Buffer
	b.Write(crlf("From: big@example.com\nSubject: large\nContent-Type: application/octet-stream\n\n"))
	line := []byte("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%1000 == 0 {
			b.WriteString(".a line that starts with a dot\r\n")
		}
		b.Write(line)
	}
	big := b.Bytes()
	msgs := [][]byte{Message(1), big, Message(3)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	var sum [32]byte
	var n int64
	h := func(ctx context.Context, m *mailaccess.Message) error {
		hs := sha256.New()
		k, err := io.Copy(hs, m.Body)
		if err != nil {
			return err
		}
		if k > n {
			n = k
			copy(sum[:], hs.Sum(nil))
		}
		return nil
	}
	mb, err := s.Dial(ctxT(t), s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Fetch(ctxT(t), mb, h)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if rep.Delivered != 3 || n != int64(len(big)) || sum != sha256.Sum256(big) {
		t.Fatalf("large message: delivered %d, size %d (want %d), hash match %v", rep.Delivered, n, len(big), sum == sha256.Sum256(big))
	}
	if c := s.Contents(t); len(c) != 0 {
		t.Fatalf("server holds %d messages", len(c))
	}
}

// testDrops cuts the connection at every chunk boundary of a clean run
// (and in the middle of the longest chunks), in both directions, then runs
// again cleanly with the same state, and checks that every message was
// delivered exactly once and that the server holds what the retention
// says.
func testDrops(t *testing.T, newServer func(t *testing.T) Server, ret mailaccess.Retention, short bool) {
	s := newServer(t)
	msgs := [][]byte{Message(1), Sample()[1], Message(3)}
	// A clean run through the proxy gives the boundaries.
	s.Seed(t, msgs)
	p, err := faultproxy.New(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(t, s, p.Addr, &mailaccess.Fetcher{Retention: ret, State: &mailaccess.MemoryState{}}, &collector{}); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	up, down := p.Boundaries()
	p.Close()
	var cuts []faultproxy.Cut
	add := func(dir faultproxy.Direction, bounds []int64) {
		prev := int64(0)
		for _, b := range bounds {
			cuts = append(cuts, faultproxy.Cut{Dir: dir, At: prev})
			if b-prev > 64 {
				cuts = append(cuts, faultproxy.Cut{Dir: dir, At: prev + (b-prev)/2})
			}
			prev = b
		}
	}
	add(faultproxy.Up, up)
	add(faultproxy.Down, down)
	if short && len(cuts) > 12 {
		step := len(cuts) / 12
		var sample []faultproxy.Cut
		for i := 0; i < len(cuts); i += step {
			sample = append(sample, cuts[i])
		}
		cuts = sample
	}
	for _, cut := range cuts {
		s.Seed(t, msgs)
		st := &mailaccess.MemoryState{}
		c := &collector{}
		p, err := faultproxy.New(s.Addr(), &cut)
		if err != nil {
			t.Fatal(err)
		}
		_, ferr := fetch(t, s, p.Addr, &mailaccess.Fetcher{Retention: ret, State: st}, c)
		p.Close()
		if ferr == nil && len(c.got) < len(msgs) {
			t.Fatalf("cut %s@%d: Fetch returned nil but delivered %d of %d", cut.Dir, cut.At, len(c.got), len(msgs))
		}
		// Let the server notice the drop (a POP3 maildrop stays locked
		// until then), then finish cleanly.
		var rep mailaccess.Report
		deadline := time.Now().Add(10 * time.Second)
		for {
			rep, err = fetch(t, s, s.Addr(), &mailaccess.Fetcher{Retention: ret, State: st}, c)
			if err == nil || !mailaccess.IsTemporary(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("cut %s@%d (first run: %v): clean rerun: %v", cut.Dir, cut.At, ferr, err)
		}
		_ = rep
		for i, m := range msgs {
			if n := c.counts[sha256.Sum256(m)]; n != 1 {
				t.Fatalf("cut %s@%d (first run: %v): message %d delivered %d times, want exactly once", cut.Dir, cut.At, ferr, i, n)
			}
		}
		switch ret {
		case mailaccess.KeepOnServer:
			sameMessages(t, fmt.Sprintf("cut %s@%d: server", cut.Dir, cut.At), s.Contents(t), msgs)
		case mailaccess.DeleteAfterFetch:
			if n := len(s.Contents(t)); n != 0 {
				t.Fatalf("cut %s@%d: server holds %d after the clean rerun", cut.Dir, cut.At, n)
			}
		}
	}
	t.Logf("%d cut points, every message delivered exactly once", len(cuts))
}
