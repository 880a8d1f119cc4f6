package fleet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

// TestRunNow: an account polled every hour, whose first run falls within
// that hour, is fetched within seconds of RunNow, and again after a
// second RunNow once its job snoozes until its next run; an unknown ID is
// an error; on SQLite and on PostgreSQL.
func TestRunNow(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv, addr, _ := imapServer(t, nil, "u", 2, 1)
			c := newCollector()
			f := db.open(t, testOptions(c.handle))
			for _, id := range []string{"u0", "u1"} {
				a := fleet.Account{ID: id, URL: "imap://" + id + "@" + addr + "/INBOX", Handler: "collect", Every: time.Hour}
				if err := f.Add(t.Context(), a); err != nil {
					t.Fatal(err)
				}
			}
			// Make the account due before Start too: RunNow needs no
			// worker in this process.
			if err := f.RunNow(t.Context(), "u0"); err != nil {
				t.Fatalf("RunNow before Start: %v", err)
			}
			if err := f.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "u0 fetched after RunNow", func() bool { return c.count("u0") == 1 })
			// Its job now snoozes for about an hour; RunNow makes it due
			// again and the new message is taken.
			waitFor(t, 10*time.Second, "u0's run recorded", func() bool {
				as, err := f.Accounts(t.Context())
				return err == nil && as[0].Runs == 1 && as[0].NextRun.After(time.Now().Add(30*time.Minute))
			})
			srv.Append("u0", "INBOX", message("u0", 1))
			start := time.Now()
			if err := f.RunNow(t.Context(), "u0"); err != nil {
				t.Fatalf("RunNow: %v", err)
			}
			waitFor(t, 10*time.Second, "u0 fetched after the second RunNow", func() bool { return c.count("u0") == 2 })
			t.Logf("%s: fetched %v after RunNow", db.name, time.Since(start).Round(time.Millisecond))
			// A RunNow on an account whose job is running or just
			// available is harmless.
			for range 3 {
				if err := f.RunNow(t.Context(), "u0"); err != nil {
					t.Fatalf("RunNow again: %v", err)
				}
			}
			// u1 was not made due: its first run is within the hour,
			// almost surely not now.
			time.Sleep(300 * time.Millisecond)
			if c.count("u1") > 0 {
				as, _ := f.Accounts(t.Context())
				t.Logf("u1 ran on its own schedule: %+v", as[1])
			}
			err := f.RunNow(t.Context(), "nobody")
			if !errors.Is(err, fleet.ErrUnknownAccount) || !errors.Is(err, mailaccess.ErrInvalidArgument) {
				t.Errorf("RunNow(unknown) = %v, want ErrUnknownAccount", err)
			}
			if n := c.count("u0"); n != 2 {
				t.Errorf("u0 received %d messages, want 2", n)
			}
		})
	}
}

// TestRunNowMigration: a fleet whose tables are version 1 (before
// RunNow) is migrated when it opens, and RunNow works on it.
func TestRunNowMigration(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			_, addr, _ := imapServer(t, nil, "u", 1, 1)
			c := newCollector()
			f := db.open(t, testOptions(c.handle))
			if err := f.Add(t.Context(), fleet.Account{ID: "u0", URL: "imap://u0@" + addr + "/INBOX", Handler: "collect", Every: time.Hour}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			d := db.sql(t)
			for _, q := range []string{
				"ALTER TABLE unimail_fleet_accounts DROP COLUMN run_now",
				"ALTER TABLE unimail_fleet_accounts DROP COLUMN run_seen",
				"UPDATE unimail_fleet_version SET version = 1",
			} {
				if _, err := d.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			f = db.open(t, testOptions(c.handle))
			if err := f.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := f.RunNow(t.Context(), "u0"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "u0 fetched after RunNow", func() bool { return c.count("u0") == 1 })
		})
	}
}
