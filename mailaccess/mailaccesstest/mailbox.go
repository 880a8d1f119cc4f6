package mailaccesstest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

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
