package mailaccess_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// runCollect runs f.Run in the background and returns a channel of the
// messages' arrival times.
func runCollect(t *testing.T, f *mailaccess.Fetcher, opts *mailaccess.RunOptions, dial func(context.Context) (mailaccess.Mailbox, error)) (<-chan time.Time, <-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan time.Time, 100)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- f.Run(ctx, dial, func(ctx context.Context, m *mailaccess.Message) error {
			got <- time.Now()
			return nil
		}, opts)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return got, done, cancel
}

func waitN(t *testing.T, ch <-chan time.Time, n int, within time.Duration) []time.Time {
	t.Helper()
	var out []time.Time
	deadline := time.After(within)
	for len(out) < n {
		select {
		case ts := <-ch:
			out = append(out, ts)
		case <-deadline:
			t.Fatalf("%d of %d messages within %v", len(out), n, within)
		}
	}
	return out
}

// IMAP: Run says when the server is watching (Waiting with push true,
// once IDLE was acknowledged), and mail delivered from then on reaches the
// handler within a second.
func TestRunIMAPIdle(t *testing.T) {
	s := imapServer(t, nil, 2)
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	armed := make(chan bool, 10)
	opts := &mailaccess.RunOptions{Interval: time.Hour, Waiting: func(mailbox string, push bool) {
		if mailbox != "imap://alice@127.0.0.1/INBOX" {
			t.Errorf("Waiting for %q", mailbox)
		}
		armed <- push
	}}
	got, _, _ := runCollect(t, f, opts, func(ctx context.Context) (mailaccess.Mailbox, error) {
		return imap.Dial(ctx, s.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: pass}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
	})
	waitN(t, got, 2, 5*time.Second)
	idles := func() int { return countName(s.Commands(), "IDLE") }
	for i := range 3 {
		// Deliver once Run says that the server is watching.
		select {
		case push := <-armed:
			if !push {
				t.Fatal("Waiting says poll on a server with IDLE")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no Waiting signal")
		}
		if idles() != i+1 {
			t.Fatalf("Waiting before IDLE %d was sent: %d IDLE commands", i+1, idles())
		}
		sent := time.Now()
		s.Append(user, "INBOX", mailaccesstest.Message(10+i))
		at := waitN(t, got, 1, 3*time.Second)[0]
		if lat := at.Sub(sent); lat > time.Second {
			t.Fatalf("push latency %v, want under a second", lat)
		} else {
			t.Logf("push latency %v", lat)
		}
	}
}

// POP3: new mail arrives within one interval.
func TestRunPOP3Polls(t *testing.T) {
	s := popServer(t, nil, 1)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	polls := make(chan bool, 100)
	opts := &mailaccess.RunOptions{Interval: 200 * time.Millisecond, Waiting: func(_ string, push bool) { polls <- push }}
	got, _, _ := runCollect(t, f, opts, func(ctx context.Context) (mailaccess.Mailbox, error) { return dialPOPCtx(ctx, s) })
	waitN(t, got, 1, 5*time.Second)
	if push := <-polls; push {
		t.Fatal("Waiting says push on POP3")
	}
	s.AddMessage(user, mailaccesstest.Message(2))
	waitN(t, got, 1, 2*time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for len(s.Messages(user)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d", len(s.Messages(user)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countName(cmds []imaptest.Command, name string) int {
	n := 0
	for _, c := range cmds {
		if c.Name == name {
			n++
		}
	}
	return n
}

func dialPOPCtx(ctx context.Context, s *poptest.Server) (mailaccess.Mailbox, error) {
	return pop.Dial(ctx, s.Addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: pass}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
}

// Connection failures are retried with backoff; nothing is lost.
func TestRunRetriesAfterDrops(t *testing.T) {
	var drops atomic.Int32
	s := popServer(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" && drops.Load() < 2 {
			drops.Add(1)
			return poptest.Fault{Drop: true}
		}
		return poptest.Fault{}
	}}, 3)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	var failed atomic.Int32
	opts := &mailaccess.RunOptions{Interval: time.Hour, MaxBackoff: 100 * time.Millisecond, AfterFetch: func(_ mailaccess.Report, err error) {
		if err != nil {
			failed.Add(1)
		}
	}}
	got, _, _ := runCollect(t, f, opts, func(ctx context.Context) (mailaccess.Mailbox, error) { return dialPOPCtx(ctx, s) })
	waitN(t, got, 3, 10*time.Second)
	if drops.Load() != 2 || failed.Load() < 1 {
		t.Fatalf("%d drops, %d failed fetches", drops.Load(), failed.Load())
	}
	select {
	case <-got:
		t.Fatal("a message was delivered twice")
	case <-time.After(300 * time.Millisecond):
	}
}

// A wrong password is not retried for ever: Run returns ErrAuth.
func TestRunStopsOnAuthFailure(t *testing.T) {
	s := popServer(t, nil, 1)
	f := &mailaccess.Fetcher{}
	_, done, _ := runCollect(t, f, &mailaccess.RunOptions{Interval: time.Hour}, func(ctx context.Context) (mailaccess.Mailbox, error) {
		return pop.Dial(ctx, s.Addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: "wrong"}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
	})
	select {
	case err := <-done:
		if !errors.Is(err, mailaccess.ErrAuth) {
			t.Fatalf("Run: %v, want ErrAuth", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept retrying a wrong password")
	}
}

// IMAP without IDLE: Run polls every Interval, as on POP3, instead of
// failing on the missing capability.
func TestRunIMAPWithoutIdlePolls(t *testing.T) {
	s := imapServer(t, &imaptest.Config{NoIdle: true}, 1)
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	polls := make(chan bool, 100)
	opts := &mailaccess.RunOptions{Interval: 200 * time.Millisecond, Waiting: func(_ string, push bool) { polls <- push }}
	got, done, _ := runCollect(t, f, opts, func(ctx context.Context) (mailaccess.Mailbox, error) {
		return imap.Dial(ctx, s.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: pass}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
	})
	waitN(t, got, 1, 5*time.Second)
	select {
	case push := <-polls:
		if push {
			t.Fatal("Waiting says push on a server without IDLE")
		}
	case err := <-done:
		t.Fatalf("Run returned %v on a server without IDLE", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no Waiting signal")
	}
	s.Append(user, "INBOX", mailaccesstest.Message(2))
	waitN(t, got, 1, 5*time.Second)
	if n := countName(s.Commands(), "IDLE"); n != 0 {
		t.Fatalf("%d IDLE commands sent to a server without IDLE", n)
	}
}
