package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// TestManyAccounts: one worker keeps POP3 and IMAP accounts drained,
// every message delivered once, deleted after it was recorded, and no
// account in two sessions at once, on SQLite and on PostgreSQL.
func TestManyAccounts(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			const users, msgs = 30, 5
			pop, popAddr, popLogins := popServer(t, nil, "p", users, msgs)
			imapSrv, imapAddr, imapLogins := imapServer(t, nil, "i", users, msgs)
			c := newCollector()
			f := db.open(t, testOptions(c.handle))
			for i := range users {
				for _, a := range []fleet.Account{
					{ID: fmt.Sprintf("pop-%d", i), URL: fmt.Sprintf("pop3://p%d@%s", i, popAddr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: 300 * time.Millisecond},
					{ID: fmt.Sprintf("imap-%d", i), URL: fmt.Sprintf("imap://i%d@%s/INBOX", i, imapAddr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: 300 * time.Millisecond},
				} {
					if err := f.Add(t.Context(), a); err != nil {
						t.Fatalf("Add(%s): %v", a.ID, err)
					}
				}
			}
			if err := f.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			empty := func() bool {
				for i := range users {
					if len(pop.Messages(fmt.Sprintf("p%d", i))) > 0 || len(imapSrv.Messages(fmt.Sprintf("i%d", i), "INBOX")) > 0 {
						return false
					}
				}
				return true
			}
			waitFor(t, 2*time.Minute, "every mailbox drained", empty)
			// More mail arrives; the next polls take it.
			for i := range users {
				pop.AddMessage(fmt.Sprintf("p%d", i), message(fmt.Sprintf("p%d", i), msgs))
				imapSrv.Append(fmt.Sprintf("i%d", i), "INBOX", message(fmt.Sprintf("i%d", i), msgs))
			}
			waitFor(t, 2*time.Minute, "the new mail drained", empty)
			want := int64(2 * users * (msgs + 1))
			waitFor(t, time.Minute, "the runs recorded", func() bool {
				as, err := f.Accounts(t.Context())
				if err != nil {
					return false
				}
				var n int64
				for _, a := range as {
					n += a.Fetched
				}
				return n == want && f.Stats().Fetched == want
			})
			for i := range users {
				for _, id := range []string{fmt.Sprintf("pop-%d", i), fmt.Sprintf("imap-%d", i)} {
					if n := c.count(id); n != msgs+1 {
						t.Errorf("%s received %d messages, want %d: %v", id, n, msgs+1, c.ids(id))
					}
				}
			}
			if popLogins.Total() < 2*users || imapLogins.Total() < 2*users {
				t.Errorf("the servers saw %d and %d logins, want at least %d each", popLogins.Total(), imapLogins.Total(), 2*users)
			}
			if n := popLogins.Overlaps() + imapLogins.Overlaps(); n != 0 {
				t.Errorf("%d logins overlapped another session of the same user", n)
			}
			st := f.Stats()
			if st.Runs == 0 || st.Fetched != want || len(st.Errors) != 0 {
				t.Errorf("Stats = %+v", st)
			}
			accts, err := f.Accounts(t.Context())
			if err != nil || len(accts) != 2*users {
				t.Fatalf("Accounts: %d, %v", len(accts), err)
			}
			for _, a := range accts {
				if a.Fetched != msgs+1 || a.LastSuccess.IsZero() || a.Stopped || a.NextRun.IsZero() {
					t.Errorf("account %s: %+v", a.ID, a)
				}
			}
			if err := f.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHostLimit: however many accounts are due, one process holds at
// most HostLimit sessions with one server host.
func TestHostLimit(t *testing.T) {
	const users = 20
	pop, addr, l := popServer(t, nil, "p", users, 3)
	c := newCollector()
	opts := testOptions(func(ctx context.Context, m *mailaccess.Message) error {
		time.Sleep(10 * time.Millisecond) // sessions last long enough to meet
		return c.handle(ctx, m)
	})
	opts.HostLimit = 2
	f := databases(t)[0].open(t, opts)
	for i := range users {
		if err := f.Add(t.Context(), fleet.Account{ID: fmt.Sprintf("a%d", i), URL: fmt.Sprintf("pop3://p%d@%s", i, addr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: 200 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "every mailbox drained", func() bool {
		for i := range users {
			if len(pop.Messages(fmt.Sprintf("p%d", i))) > 0 {
				return false
			}
		}
		return true
	})
	if m := l.Max(); m > 2 || m < 1 {
		t.Errorf("%d sessions at once with one host, want at most HostLimit (2)", m)
	}
	t.Logf("most sessions at once: %d, over %d logins", l.Max(), l.Total())
}

// TestLoginDelay: a POP3 server that asks for LOGIN-DELAY gets no login
// sooner, whatever the account's period.
func TestLoginDelay(t *testing.T) {
	_, addr, l := popServer(t, &poptest.Config{LoginDelay: 3600}, "p", 1, 1)
	c := newCollector()
	f := databases(t)[0].open(t, testOptions(c.handle))
	if err := f.Add(t.Context(), fleet.Account{ID: "a", URL: fmt.Sprintf("pop3://p0@%s", addr), Handler: "collect", Every: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var a fleet.AccountStatus
	waitFor(t, time.Minute, "the first run recorded", func() bool {
		as, err := f.Accounts(t.Context())
		if err != nil || len(as) != 1 {
			return false
		}
		a = as[0]
		return a.Runs == 1
	})
	if wait := a.NextRun.Sub(a.LastSuccess); wait < 59*time.Minute {
		t.Errorf("next run %s after the last, want the server's LOGIN-DELAY (1h)", wait)
	}
	if c.count("a") != 1 || l.Total() != 1 {
		t.Errorf("%d messages, %d logins; want 1 and 1", c.count("a"), l.Total())
	}
}

// TestRemove: a removed account's job ends, and it is listed no more.
func TestRemove(t *testing.T) {
	_, addr, _ := popServer(t, nil, "p", 2, 1)
	c := newCollector()
	db := databases(t)[0]
	f := db.open(t, testOptions(c.handle))
	for i := range 2 {
		if err := f.Add(t.Context(), fleet.Account{ID: fmt.Sprintf("a%d", i), URL: fmt.Sprintf("pop3://p%d@%s", i, addr), Handler: "collect", Every: 200 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "both accounts fetched", func() bool { return c.count("a0") == 1 && c.count("a1") == 1 })
	if err := f.Remove(t.Context(), "a0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "a0's job cancelled", func() bool { return jobState(t, db, "a0") == "cancelled" })
	as, err := f.Accounts(t.Context())
	if err != nil || len(as) != 1 || as[0].ID != "a1" {
		t.Fatalf("Accounts after Remove = %v, %v", as, err)
	}
	if s := jobState(t, db, "a1"); s == "cancelled" {
		t.Errorf("a1's job is %s", s)
	}
}
