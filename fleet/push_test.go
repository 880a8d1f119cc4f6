package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// TestPush: a pushed IMAP account takes new mail as the server reports it
// (IDLE), long before its poll period or its push period end; a worker
// that stops hands the account over at once, and another worker goes on
// pushing it.
func TestPush(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv, addr, _ := imapServer(t, nil, "u", 1, 1)
			c := newCollector()
			opts := testOptions(c.handle)
			opts.PushPeriod, opts.RescueAfter = 10*time.Minute, 11*time.Minute
			a := db.open(t, opts)
			acct := fleet.Account{ID: "p", URL: fmt.Sprintf("imap://u0@%s/INBOX", addr), Handler: "collect", Push: true, Every: time.Hour}
			if err := a.Add(t.Context(), acct); err != nil {
				t.Fatal(err)
			}
			if _, err := db.sql(t).ExecContext(t.Context(), "UPDATE river_job SET scheduled_at = "+past(db.name)); err != nil {
				t.Fatal(err)
			}
			if err := a.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			idles := func() int {
				n := 0
				for _, c := range srv.Commands() {
					if c.Name == "IDLE" {
						n++
					}
				}
				return n
			}
			waitFor(t, time.Minute, "the first message and an IDLE", func() bool { return c.count("p") == 1 && idles() > 0 })
			srv.Append("u0", "INBOX", message("u0", 1))
			waitFor(t, time.Minute, "the pushed message", func() bool { return c.count("p") == 2 })

			// A second worker; the first stops and hands over.
			b := db.open(t, opts)
			if err := b.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := idles()
			stopped := make(chan error, 1)
			go func() { stopped <- a.Stop(t.Context()) }()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Stop did not hand the pushed account over")
			}
			waitFor(t, time.Minute, "worker B idling", func() bool { return idles() > before })
			srv.Append("u0", "INBOX", message("u0", 2))
			waitFor(t, time.Minute, "the message pushed through worker B", func() bool { return c.count("p") == 3 })
			if st := b.Stats(); st.Running != 1 {
				t.Errorf("worker B runs %d accounts, want 1", st.Running)
			}
			if got := c.ids("p"); len(got) != 3 {
				t.Errorf("received %v", got)
			}
		})
	}
}

// TestPushWithoutIdle: a pushed account on a server without IDLE is
// polled every Every.
func TestPushWithoutIdle(t *testing.T) {
	srv, addr, _ := imapServer(t, &imaptest.Config{NoIdle: true}, "u", 1, 1)
	c := newCollector()
	db := databases(t)[0]
	f := db.open(t, testOptions(c.handle))
	if err := f.Add(t.Context(), fleet.Account{ID: "p", URL: fmt.Sprintf("imap://u0@%s/INBOX", addr), Handler: "collect", Push: true, Every: 300 * time.Millisecond, Retention: mailaccess.DeleteAfterFetch}); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the first message", func() bool { return c.count("p") == 1 })
	srv.Append("u0", "INBOX", message("u0", 1))
	waitFor(t, time.Minute, "the polled message", func() bool { return c.count("p") == 2 && len(srv.Messages("u0", "INBOX")) == 0 })
	for _, cmd := range srv.Commands() {
		if cmd.Name == "IDLE" {
			t.Fatalf("IDLE sent to a server without it")
		}
	}
}
