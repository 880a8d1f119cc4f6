package imap

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// The tests in this file run against scriptServer, for server behaviour
// that a real server cannot be made to show.

const scriptPassword = "pw-s3cret-42"

func dialScript(t *testing.T, s *scriptServer, timeout time.Duration) *Mailbox {
	t.Helper()
	mb, err := Dial(t.Context(), s.addr, &Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: "alice", Password: scriptPassword},
			Security: mailaccess.SecurityInsecureCleartext,
			Timeout:  timeout,
		},
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { mb.Abort() })
	return mb
}

// within fails the test if f does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
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

const listAnswer = `* 1 FETCH (UID 7 RFC822.SIZE 5 INTERNALDATE "01-Jan-2024 00:00:00 +0000")`

func TestOpenUIDAfterLiteralIsProtocolError(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		if strings.Contains(rest, "BODY.PEEK[]") {
			// RFC 3501 does not fix the order of the items: the UID
			// after the literal is legal, and go-imap cannot match it.
			c.send("* 1 FETCH (BODY[] {5}")
			c.send("hello UID 7)")
		} else {
			c.send(listAnswer)
		}
		c.send(tag + " OK done")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	ctx := t.Context()
	list, err := mb.List(ctx)
	if err != nil || len(list) != 1 || list[0].UID != "42/7" || list[0].Size != 5 {
		t.Fatalf("List = %v, %v", list, err)
	}
	_, err = mb.Open(ctx, "42/7")
	if !errors.Is(err, mailaccess.ErrProtocol) || errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open = %v, want ErrProtocol and not ErrNotFound", err)
	}
	// The answer was parsed in full: the session is still in step.
	if _, err := mb.List(ctx); err != nil {
		t.Fatalf("List after the unmatched answer: %v", err)
	}
}

func TestOpenNoDataIsNotFound(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send(tag + " OK nothing")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	_, err := mb.Open(t.Context(), "42/7")
	if !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open = %v, want ErrNotFound", err)
	}
}

// Dovecot answers BODY[] NIL for a message that another session
// expunged, and ends the FETCH with NO [EXPUNGEISSUED]: the message is
// gone. Another NO is the server's error (for a single fetch; in a batch,
// the NIL is answered before the status is known).
func TestOpenNILBodyIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   error
	}{
		{"OK done", mailaccess.ErrNotFound},
		{"NO [EXPUNGEISSUED] Some of the requested messages no longer exist", mailaccess.ErrNotFound},
		{"NO [SERVERBUG] broken", mailaccess.ErrServer},
	} {
		s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
			switch {
			case verb == "UID FETCH" && strings.Contains(rest, "RFC822.SIZE"):
				c.send(listAnswer)
				c.send(tag + " OK done")
			case verb == "UID FETCH":
				c.send("* 1 FETCH (UID 7 BODY[] NIL)")
				c.send(tag + " " + tc.status)
			default:
				return false
			}
			return true
		})
		mb := dialScript(t, s, 5*time.Second)
		for _, batched := range []bool{false, true} {
			if batched {
				list, err := mb.List(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				mb.WillOpen(list[0].UID)
			}
			_, err := mb.Open(t.Context(), "42/7")
			want := tc.want
			if batched {
				// A batch's status comes after the message has been
				// answered for: NIL alone says expunged.
				want = mailaccess.ErrNotFound
			}
			if !errors.Is(err, want) {
				t.Fatalf("%s, batched %v: Open = %v, want %v", tc.status, batched, err, want)
			}
		}
		if _, err := mb.List(t.Context()); err != nil {
			t.Fatalf("%s: the session did not survive: %v", tc.status, err)
		}
	}
}

func TestOpenOtherUIDValiditySendsNothing(t *testing.T) {
	s := newScriptServer(t, scriptCaps, nil)
	mb := dialScript(t, s, 5*time.Second)
	_, err := mb.Open(t.Context(), "41/7")
	if !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open = %v, want ErrNotFound", err)
	}
	for _, l := range s.commands() {
		if strings.Contains(l, "FETCH") {
			t.Fatalf("a FETCH was sent: %q", l)
		}
	}
	for _, bad := range []mailaccess.UID{"7", "x/7", "42/0", "42/", "42/7/1"} {
		if _, err := mb.Open(t.Context(), bad); !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Errorf("Open(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestReadEOFOnlyAfterTaggedOK(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 1 FETCH (UID 7 BODY[] {5}")
		c.send("hello)")
		c.send(tag + " NO [SERVERBUG] the message could not be read in full")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	r, err := mb.Open(t.Context(), "42/7")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err == nil || !errors.Is(err, mailaccess.ErrServer) {
		t.Fatalf("ReadAll = %q, %v; want an ErrServer error instead of EOF", b, err)
	}
}

func TestStalledCommandTimesOut(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		return verb == "UID FETCH" // never answered
	})
	const timeout = 200 * time.Millisecond
	mb := dialScript(t, s, timeout)
	var err error
	start := time.Now()
	within(t, 5*time.Second, "List", func() { _, err = mb.List(t.Context()) })
	if !errors.Is(err, mailaccess.ErrConnection) || !mailaccess.IsTemporary(err) {
		t.Fatalf("List = %v, want a temporary ErrConnection", err)
	}
	var stall *mailerr.TimeoutError
	if !errors.As(err, &stall) {
		t.Errorf("List error %v does not carry the stall", err)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("List gave up after %v, before the %v bound", d, timeout)
	}
	// The session is dead: later calls fail at once.
	within(t, time.Second, "second List", func() { _, err = mb.List(t.Context()) })
	if !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("second List = %v, want ErrConnection", err)
	}
	within(t, time.Second, "Abort", func() { mb.Abort() })
}

func TestUnknownUntaggedKillsSession(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 3 XUNKNOWN \x1b[31mfoo")
		c.send(tag + " OK done")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	_, err := mb.List(t.Context())
	if !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("List = %v, want ErrConnection", err)
	}
	if strings.ContainsAny(err.Error(), "\x1b") {
		t.Errorf("error holds a control character: %q", err)
	}
	if err := mb.Delete(t.Context(), "42/7"); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Delete on a dead session = %v, want ErrConnection", err)
	}
}

// bigLiteralServer answers the body FETCH with the start of a literal of
// 10 MB and then sends nothing more, holding the connection open.
func bigLiteralServer(t *testing.T) *scriptServer {
	return newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 1 FETCH (UID 7 BODY[] {10000000}")
		c.Write([]byte(strings.Repeat("x", 100000)))
		return true
	})
}

func TestCancelMidLiteral(t *testing.T) {
	s := bigLiteralServer(t)
	mb := dialScript(t, s, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	r, err := mb.Open(ctx, "42/7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 50000)); err != nil {
		t.Fatal(err)
	}
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, readErr = io.Copy(io.Discard, r)
	}()
	time.Sleep(50 * time.Millisecond) // let the reader block on the stalled socket
	cancel()
	within(t, 5*time.Second, "the blocked Read", wg.Wait)
	if !errors.Is(readErr, context.Canceled) || !errors.Is(readErr, mailaccess.ErrConnection) {
		t.Fatalf("Read = %v, want ErrConnection caused by context.Canceled", readErr)
	}
	within(t, 5*time.Second, "Close of the reader", func() { r.Close() })
	within(t, 5*time.Second, "Abort", func() { mb.Abort() })
}

func TestAbortWithUndrainedLiteral(t *testing.T) {
	s := bigLiteralServer(t)
	mb := dialScript(t, s, time.Minute)
	r, err := mb.Open(t.Context(), "42/7")
	if err != nil {
		t.Fatal(err)
	}
	// The caller never reads: go-imap's reader is parked on the literal.
	within(t, 5*time.Second, "Abort", func() { mb.Abort() })
	within(t, 5*time.Second, "Read after Abort", func() {
		if _, err := r.Read(make([]byte, 10)); err == nil {
			t.Error("Read after Abort succeeded")
		}
	})
	within(t, 5*time.Second, "Close after Abort", func() { r.Close() })
	within(t, 5*time.Second, "second Abort", func() { mb.Abort() })
}

func TestCloseWithUndrainedLiteralCancelled(t *testing.T) {
	s := bigLiteralServer(t)
	mb := dialScript(t, s, time.Minute)
	r, err := mb.Open(t.Context(), "42/7")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	within(t, 5*time.Second, "Close", func() { mb.Close(ctx) })
}

func TestReadStallTimesOut(t *testing.T) {
	s := bigLiteralServer(t)
	mb := dialScript(t, s, 200*time.Millisecond)
	r, err := mb.Open(t.Context(), "42/7")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A slow reader is not a stall: the watchdog counts socket waits only.
	time.Sleep(400 * time.Millisecond)
	if _, err := io.ReadFull(r, make([]byte, 50000)); err != nil {
		t.Fatalf("read after a pause: %v", err)
	}
	var readErr error
	within(t, 5*time.Second, "stalled Read", func() { _, readErr = io.Copy(io.Discard, r) })
	var stall *mailerr.TimeoutError
	if !errors.Is(readErr, mailaccess.ErrConnection) || !errors.As(readErr, &stall) {
		t.Fatalf("Read = %v, want ErrConnection from a stall", readErr)
	}
}

func TestWaitIdleNeverAcknowledged(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		return verb == "IDLE"
	})
	mb := dialScript(t, s, 200*time.Millisecond)
	var err error
	ready := false
	within(t, 5*time.Second, "Wait", func() { err = mb.Wait(t.Context(), func() { ready = true }) })
	if !errors.Is(err, mailaccess.ErrConnection) || ready {
		t.Fatalf("Wait = %v (ready called: %v), want ErrConnection without ready", err, ready)
	}
}

// idleServer acknowledges IDLE, sends extra (if any) once idling, and
// answers DONE when answerDone is set.
func idleServer(t *testing.T, extra string, answerDone bool) *scriptServer {
	var idleTag string
	return newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		switch {
		case verb == "IDLE":
			idleTag = tag
			c.send("+ idling")
			if extra != "" {
				c.send(extra)
			}
			return true
		case tag == "DONE":
			if answerDone {
				c.send(idleTag + " OK idle done")
			}
			return true
		}
		return false
	})
}

func TestWaitWakesOnExists(t *testing.T) {
	s := idleServer(t, "* 2 EXISTS", true)
	mb := dialScript(t, s, 5*time.Second)
	var err error
	within(t, 5*time.Second, "Wait", func() { err = mb.Wait(t.Context(), nil) })
	if err != nil {
		t.Fatalf("Wait = %v", err)
	}
	// The session is still usable after DONE.
	if err := mb.Close(t.Context()); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

func TestWaitCancelSendsDone(t *testing.T) {
	s := idleServer(t, "", true)
	mb := dialScript(t, s, 5*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := mb.Wait(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
	}
	cmds := s.commands()
	if cmds[len(cmds)-1] != "DONE" {
		t.Errorf("last line sent = %q, want DONE", cmds[len(cmds)-1])
	}
	if _, err := mb.List(t.Context()); err == nil {
		t.Log("List after Wait works")
	}
}

func TestWaitDoneNeverAnswered(t *testing.T) {
	s := idleServer(t, "", false)
	mb := dialScript(t, s, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var err error
	within(t, 5*time.Second, "Wait", func() { err = mb.Wait(ctx, nil) })
	if !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Wait = %v, want ErrConnection", err)
	}
}

func TestWaitRestartsIdle(t *testing.T) {
	var mu sync.Mutex
	idles := 0
	var idleTag string
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		switch {
		case verb == "IDLE":
			mu.Lock()
			idles++
			n := idles
			mu.Unlock()
			idleTag = tag
			c.send("+ idling")
			if n == 3 {
				c.send("* 2 EXISTS")
			}
			return true
		case tag == "DONE":
			c.send(idleTag + " OK idle done")
			return true
		}
		return false
	})
	mb := dialScript(t, s, 5*time.Second)
	mb.idleRestart = 30 * time.Millisecond
	readies := 0
	if err := mb.Wait(t.Context(), func() { readies++ }); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if idles != 3 || readies != 1 {
		t.Fatalf("IDLE sent %d times, ready called %d times; want 3 and 1", idles, readies)
	}
}

func TestWaitWithoutIdleIsUnsupported(t *testing.T) {
	s := newScriptServer(t, "IMAP4rev1 UIDPLUS", nil)
	mb := dialScript(t, s, 5*time.Second)
	if err := mb.Wait(t.Context(), nil); !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("Wait = %v, want ErrUnsupported", err)
	}
}

func TestLoginDisabledRefusedBeforeSending(t *testing.T) {
	s := newScriptServer(t, "IMAP4rev1 LOGINDISABLED", nil)
	_, err := Dial(t.Context(), s.addr, &Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: "alice", Password: scriptPassword},
			Security: mailaccess.SecurityInsecureCleartext,
		},
	})
	if !errors.Is(err, mailaccess.ErrAuth) {
		t.Fatalf("Dial = %v, want ErrAuth", err)
	}
	for _, l := range s.commands() {
		if strings.Contains(l, "LOGIN") || strings.Contains(l, scriptPassword) {
			t.Fatalf("the password was sent: %q", l)
		}
	}
}

func TestServerEchoingPasswordIsScrubbed(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "LOGIN" {
			return false
		}
		c.send(tag + " NO [AUTHENTICATIONFAILED] wrong password " + scriptPassword + " for alice")
		return true
	})
	_, err := Dial(t.Context(), s.addr, &Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: "alice", Password: scriptPassword},
			Security: mailaccess.SecurityInsecureCleartext,
		},
	})
	if !errors.Is(err, mailaccess.ErrAuth) {
		t.Fatalf("Dial = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), scriptPassword) {
		t.Fatalf("the error holds the password: %v", err)
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("error %q does not show the server text redacted", err)
	}
}

func TestCommitStoreRefused(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID STORE" {
			return false
		}
		c.send(tag + " NO [UNAVAILABLE] try later")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	if err := mb.Delete(t.Context(), "42/7"); err != nil {
		t.Fatal(err)
	}
	err := mb.Close(t.Context())
	if !errors.Is(err, mailaccess.ErrCommitFailed) || !mailaccess.IsTemporary(err) {
		t.Fatalf("Close = %v, want a temporary ErrCommitFailed", err)
	}
	for _, l := range s.commands() {
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("EXPUNGE sent after STORE failed: %q", l)
		}
	}
}

func TestDropMidLiteral(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 1 FETCH (UID 7 BODY[] {50000}")
		c.Write([]byte(strings.Repeat("x", 5000)))
		c.Close()
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	r, err := mb.Open(t.Context(), "42/7")
	if err != nil {
		t.Fatal(err)
	}
	// go-imap reports a connection that ends inside a literal as a clean
	// EOF; the driver must not.
	b, err := io.ReadAll(r)
	if err == nil || !errors.Is(err, mailaccess.ErrConnection) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAll = %d bytes, %v; want ErrConnection with io.ErrUnexpectedEOF, never a short message", len(b), err)
	}
	within(t, 5*time.Second, "Close of the reader", func() { r.Close() })
	within(t, 5*time.Second, "Abort", func() { mb.Abort() })
}

func TestMailboxName(t *testing.T) {
	for _, tc := range []struct{ user, host, folder, want string }{
		{"alice", "Mail.Example.COM", "INBOX", "imap://alice@mail.example.com/INBOX"},
		{"bob@example.com", "mail.example.com", "Archive/2024", "imap://bob%40example.com@mail.example.com/Archive%2F2024"},
		{"a b:c", "::1", "Sent Items", "imap://a%20b%3Ac@[::1]/Sent%20Items"},
		{"", "host", "INBOX", "imap://host/INBOX"},
	} {
		if got := mailboxName(tc.user, tc.host, tc.folder); got != tc.want {
			t.Errorf("mailboxName(%q, %q, %q) = %q, want %q", tc.user, tc.host, tc.folder, got, tc.want)
		}
	}
}

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		sec  mailaccess.Security
		host string
		port string
	}{
		{"mail.example.com:1993", mailaccess.SecurityTLS, "mail.example.com", "1993"},
		{"mail.example.com", mailaccess.SecurityTLS, "mail.example.com", "993"},
		{"mail.example.com", mailaccess.SecurityStartTLS, "mail.example.com", "143"},
		{"[::1]:143", mailaccess.SecurityStartTLS, "::1", "143"},
		{"::1", mailaccess.SecurityTLS, "::1", "993"},
	} {
		host, port, err := splitAddr(tc.addr, tc.sec)
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("splitAddr(%q) = %q, %q, %v; want %q, %q", tc.addr, host, port, err, tc.host, tc.port)
		}
	}
	if _, _, err := splitAddr("host\r\n:143", mailaccess.SecurityTLS); err == nil {
		t.Error("splitAddr accepted CR LF")
	}
}

func TestAbortFromAnotherGoroutineDuringWait(t *testing.T) {
	s := idleServer(t, "", true)
	mb := dialScript(t, s, 5*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- mb.Wait(t.Context(), nil) }()
	// Wait until IDLE is running, then pull the plug from here.
	for !idling(s) {
		time.Sleep(5 * time.Millisecond)
	}
	within(t, 5*time.Second, "Abort", func() { mb.Abort() })
	select {
	case err := <-errc:
		if !errors.Is(err, mailaccess.ErrConnection) {
			t.Fatalf("Wait = %v, want ErrConnection", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Abort")
	}
}

// idling reports whether the IDLE command reached s.
func idling(s *scriptServer) bool {
	for _, l := range s.commands() {
		if strings.HasSuffix(l, " IDLE") {
			return true
		}
	}
	return false
}

func TestCancelDuringList(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		return verb == "UID FETCH" // never answered
	})
	mb := dialScript(t, s, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := mb.List(ctx)
		errc <- err
	}()
	for !slices.ContainsFunc(s.commands(), func(l string) bool { return strings.Contains(l, "UID FETCH") }) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, mailaccess.ErrConnection) {
			t.Fatalf("List = %v, want ErrConnection caused by context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("List did not return after cancel")
	}
	if _, err := mb.List(t.Context()); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("List after a cancelled one = %v, want ErrConnection (the session is dead)", err)
	}
	// A context that ended before the call leaves a live session alone.
	s2 := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send(listAnswer)
		c.send(tag + " OK done")
		return true
	})
	mb2 := dialScript(t, s2, 5*time.Second)
	if _, err := mb2.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with an ended context = %v, want context.Canceled", err)
	}
	if list, err := mb2.List(t.Context()); err != nil || len(list) != 1 {
		t.Fatalf("List afterwards = %v, %v", list, err)
	}
}

// In a batch, a body that go-imap cannot match (its UID after the
// literal) makes the message it belonged to ErrProtocol, never "gone";
// the next message of the batch still comes through.
func TestBatchStrayIsProtocolError(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		switch {
		case verb == "UID FETCH" && strings.Contains(rest, "RFC822.SIZE"):
			c.send(listAnswer)
			c.send(`* 2 FETCH (UID 8 RFC822.SIZE 5 INTERNALDATE "01-Jan-2024 00:00:00 +0000")`)
			c.send(tag + " OK done")
		case verb == "UID FETCH" && strings.HasPrefix(rest, "7:8 "):
			c.send("* 1 FETCH (BODY[] {5}")
			c.Write([]byte("hello UID 7)\r\n"))
			c.send("* 2 FETCH (UID 8 BODY[] {5}")
			c.Write([]byte("world)\r\n"))
			c.send(tag + " OK done")
		default:
			return false
		}
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	mb.WillOpen(list[0].UID, list[1].UID)
	if _, err := mb.Open(t.Context(), list[0].UID); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Fatalf("Open of the unmatched message = %v, want ErrProtocol", err)
	}
	r, err := mb.Open(t.Context(), list[1].UID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "world" {
		t.Fatalf("second message = %q, %v", b, err)
	}
	r.Close()
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A listing answered out of UID order, with a message repeated (an
// unsolicited FETCH of its flags) comes out sorted, once per UID, with
// the size that one of the answers gave.
func TestListOutOfOrderAndRepeated(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 2 FETCH (UID 9 RFC822.SIZE 20)")
		c.send("* 1 FETCH (UID 7 RFC822.SIZE 10)")
		c.send(`* 1 FETCH (UID 7 FLAGS (\Seen))`)
		c.send("* 3 FETCH (UID 11 RFC822.SIZE 30)")
		c.send(tag + " OK done")
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []mailaccess.MessageInfo{{UID: "42/7", Size: 10}, {UID: "42/9", Size: 20}, {UID: "42/11", Size: 30}}
	if !slices.Equal(list, want) {
		t.Fatalf("List = %+v, want %+v", list, want)
	}
}

// In a batch, a message whose literal arrived in full is complete: Read
// ends with io.EOF even when the connection is lost right after the
// literal, before the rest of its FETCH response; the loss fails the next
// Open.
func TestBatchConnectionLostAfterLiteral(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		switch {
		case verb == "UID FETCH" && strings.Contains(rest, "RFC822.SIZE"):
			c.send(`* 1 FETCH (UID 7 RFC822.SIZE 5)`)
			c.send(`* 2 FETCH (UID 8 RFC822.SIZE 5)`)
			c.send(tag + " OK done")
		case verb == "UID FETCH":
			c.Write([]byte("* 1 FETCH (UID 7 BODY[] {5}\r\nhello"))
			c.Close()
		default:
			return false
		}
		return true
	})
	mb := dialScript(t, s, 5*time.Second)
	ctx := t.Context()
	if _, err := mb.List(ctx); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen("42/7", "42/8")
	r, err := mb.Open(ctx, "42/7")
	if err != nil {
		t.Fatalf("Open(7): %v", err)
	}
	body, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("message 7 = %q, %v; want hello, nil", body, err)
	}
	if _, err := mb.Open(ctx, "42/8"); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Open(8) = %v, want ErrConnection", err)
	}
}
