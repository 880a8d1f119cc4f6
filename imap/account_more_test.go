package imap_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// TestFetchAccountIMAP4rev2: on an IMAP4rev2 server, which answers each
// SELECT after the first with "OK [CLOSED]" for the folder it leaves,
// every folder is fetched and committed on the one connection.
func TestFetchAccountIMAP4rev2(t *testing.T) {
	s := newServer(t, &imaptest.Config{IMAP4rev2: true})
	s.CreateFolder(user, "Junk", `\Junk`)
	for i, f := range []string{"INBOX", "A", "A/B", "Junk"} {
		s.Append(user, f, message(i, 300))
		s.Append(user, f, message(10+i, 300))
	}
	var got sink
	rep, err := fetchAccount(t, s, &mailaccess.Fetcher{State: &mailaccess.MemoryState{}, Retention: mailaccess.DeleteAfterFetch}, nil, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Folders) != 3 {
		t.Fatalf("%d folders, want 3 (not Junk)", len(rep.Folders))
	}
	for _, f := range []string{"INBOX", "A", "A/B"} {
		if n := len(s.Messages(user, f)); n != 0 {
			t.Fatalf("%s holds %d", f, n)
		}
	}
	if n := len(s.Messages(user, "Junk")); n != 2 {
		t.Fatalf("Junk holds %d, want 2", n)
	}
	if g := got.take(); len(g["INBOX"])+len(g["A"])+len(g["A/B"]) != 6 {
		t.Fatalf("delivered %v", summary(g))
	}
	if hasPlainExpunge(s) {
		t.Fatal("a plain EXPUNGE was sent")
	}
}

// TestAccountAbortConcurrent: Abort from another goroutine, while a
// folder's fetch waits on a stalled server, ends FetchAccount promptly
// with ErrConnection; nothing was deleted.
func TestAccountAbortConcurrent(t *testing.T) {
	s := newServer(t, nil)
	for i, f := range []string{"INBOX", "A"} {
		s.Append(user, f, message(i, 300))
	}
	stalled := make(chan struct{}, 1)
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK") {
			select {
			case stalled <- struct{}{}:
			default:
			}
			return imaptest.Fault{Stall: time.Minute}
		}
		return imaptest.Fault{}
	})
	a := dialAccount(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := (&mailaccess.Fetcher{State: &mailaccess.MemoryState{}, Retention: mailaccess.DeleteAfterFetch}).FetchAccount(t.Context(), a, nil, (&sink{}).handler())
		done <- err
	}()
	<-stalled
	a.Abort()
	select {
	case err := <-done:
		if !errors.Is(err, mailaccess.ErrConnection) {
			t.Fatalf("FetchAccount after Abort = %v, want ErrConnection", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("FetchAccount did not end after Abort")
	}
	for _, f := range []string{"INBOX", "A"} {
		if n := len(s.Messages(user, f)); n != 1 {
			t.Fatalf("%s holds %d, want 1", f, n)
		}
	}
}
