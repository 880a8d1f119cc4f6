package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// TestAuthFailureStops: a refused password stops the account: it is
// reported (kind "auth", without the password), its job is cancelled, and
// the other accounts go on. Add starts it again.
func TestAuthFailureStops(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv, addr, l := popServer(t, nil, "u", 2, 2)
			srv.AddUser("u1", "another password")
			c := newCollector()
			f := db.open(t, testOptions(c.handle))
			for i := range 2 {
				a := fleet.Account{ID: fmt.Sprintf("a%d", i), URL: fmt.Sprintf("pop3://u%d@%s", i, addr), Handler: "collect", Retention: mailaccess.DeleteAfterFetch, Every: 200 * time.Millisecond}
				if err := f.Add(t.Context(), a); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			status := func(id string) fleet.AccountStatus {
				as, err := f.Accounts(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					if a.ID == id {
						return a
					}
				}
				t.Fatalf("no account %s", id)
				return fleet.AccountStatus{}
			}
			waitFor(t, time.Minute, "a1 stopped", func() bool { return status("a1").Stopped })
			s := status("a1")
			if s.LastErrorKind != "auth" || s.LastError.IsZero() || s.Failures != 1 {
				t.Errorf("a1 = %+v; want stopped on an auth error", s)
			}
			if strings.Contains(s.LastErrorText, password("u1")) || strings.Contains(s.LastErrorText, "another password") {
				t.Errorf("the error shows a password: %q", s.LastErrorText)
			}
			waitFor(t, time.Minute, "a1's job cancelled", func() bool { return jobState(t, db, "a1") == "cancelled" })
			waitFor(t, time.Minute, "a0 drained", func() bool { return c.count("a0") == 2 })
			if n := f.Stats().Errors["auth"]; n != 1 {
				t.Errorf("Stats.Errors[auth] = %d, want 1", n)
			}
			// The stopped account logs in no more; fixing the password
			// and adding it again restarts it.
			logins := l.Total()
			srv.AddUser("u1", password("u1"))
			if err := f.Add(t.Context(), fleet.Account{ID: "a1", URL: fmt.Sprintf("pop3://u1@%s", addr), Handler: "collect", Retention: mailaccess.DeleteAfterFetch, Every: 200 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, "a1 drained after Add", func() bool { return c.count("a1") == 2 })
			if s := status("a1"); s.Stopped || l.Total() <= logins {
				t.Errorf("a1 after Add = %+v", s)
			}
		})
	}
}

// TestTemporaryErrorsBackOff: a server that answers logins with
// [SYS/TEMP] makes the account retry with growing waits, counted as
// failures; once the server recovers the account is drained and its
// failures reset.
func TestTemporaryErrorsBackOff(t *testing.T) {
	var refused atomic.Int32
	cfg := &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if (c.Name == "PASS" || c.Name == "AUTH") && refused.Add(1) <= 3 {
			return poptest.Fault{Err: "[SYS/TEMP] maintenance"}
		}
		return poptest.Fault{}
	}}
	srv, addr, _ := popServer(t, cfg, "u", 1, 3)
	c := newCollector()
	db := databases(t)[0]
	f := db.open(t, testOptions(c.handle))
	if err := f.Add(t.Context(), fleet.Account{ID: "a", URL: fmt.Sprintf("pop3://u0@%s", addr), Handler: "collect", Retention: mailaccess.DeleteAfterFetch, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql(t).ExecContext(t.Context(), "UPDATE river_job SET scheduled_at = "+past(db.name)); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var seen []int
	waitFor(t, time.Minute, "the account drained", func() bool {
		as, err := f.Accounts(t.Context())
		if err != nil || len(as) != 1 {
			return false
		}
		if n := as[0].Failures; len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		return c.count("a") == 3 && as[0].Fetched == 3 && len(srv.Messages("u0")) == 0
	})
	as, _ := f.Accounts(t.Context())
	a := as[0]
	if a.Failures != 0 || a.Stopped || a.LastErrorKind != "unavailable" || a.LastSuccess.Before(a.LastError) {
		t.Errorf("account = %+v; want recovered after unavailable errors", a)
	}
	if st := f.Stats(); st.Errors["unavailable"] != 3 {
		t.Errorf("Stats.Errors = %v, want 3 unavailable", st.Errors)
	}
	// A success an hour away: the account went back to its period.
	if time.Until(a.NextRun) < 30*time.Minute {
		t.Errorf("next run in %s, want about an hour", time.Until(a.NextRun))
	}
	t.Logf("failures seen: %v", seen)
}

// TestBadInput: what cannot work is refused with an error of its kind,
// and no error shows a secret.
func TestBadInput(t *testing.T) {
	db := databases(t)[0]
	f := db.open(t, nil)
	for _, c := range []struct {
		name string
		a    fleet.Account
		kind error
	}{
		{"no ID", fleet.Account{URL: "imaps://a@h/INBOX", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"control in ID", fleet.Account{ID: "a\r\nb", URL: "imaps://a@h/INBOX", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"bad scheme", fleet.Account{ID: "a", URL: "http://a@h/", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"not a URL", fleet.Account{ID: "a", URL: "imaps://a@h:99999/INBOX", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"password in URL", fleet.Account{ID: "a", URL: "imaps://a:hunter2secret@h/INBOX", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"CRLF in user", fleet.Account{ID: "a", URL: "imaps://a%0D%0ALOGOUT@h/INBOX", Handler: "h"}, mailaccess.ErrInvalidArgument},
		{"bad retention", fleet.Account{ID: "a", URL: "imaps://a@h/INBOX", Handler: "h", Retention: "sometimes"}, mailaccess.ErrInvalidArgument},
		{"move on POP3", fleet.Account{ID: "a", URL: "pop3s://a@h", Handler: "h", Retention: mailaccess.MoveTo("Archive")}, mailaccess.ErrUnsupported},
		{"no handler", fleet.Account{ID: "a", URL: "imaps://a@h/INBOX"}, mailaccess.ErrInvalidArgument},
		{"period too short", fleet.Account{ID: "a", URL: "imaps://a@h/INBOX", Handler: "h", Every: time.Millisecond}, mailaccess.ErrInvalidArgument},
	} {
		err := f.Add(t.Context(), c.a)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: Add = %v, want %v", c.name, err, c.kind)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
	}
	if as, err := f.Accounts(t.Context()); err != nil || len(as) != 0 {
		t.Errorf("Accounts after refused Adds = %v, %v", as, err)
	}
	if err := f.Start(t.Context()); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Errorf("Start without Credentials = %v", err)
	}
	for name, o := range map[string]*fleet.Options{
		"prefix":  {TablePrefix: "Bad-Prefix"},
		"rescue":  {JobTimeout: time.Minute, PushPeriod: time.Minute, RescueAfter: time.Minute},
		"backoff": {Backoff: time.Hour, MaxBackoff: time.Minute},
	} {
		if _, err := fleet.OpenSQLite(t.Context(), t.TempDir()+"/x.db", o); !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Errorf("options %s: %v", name, err)
		}
	}
}

// TestOpenErrors: an unreachable database is a temporary state error, a
// DSN that does not parse an invalid argument, and a schema from a newer
// version is refused; no error shows the password.
func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := fleet.OpenPostgres(ctx, "postgres://u:s3cretpass@127.0.0.1:1/db?connect_timeout=2", nil)
	if !errors.Is(err, mailaccess.ErrState) || !mailaccess.IsTemporary(err) || strings.Contains(err.Error(), "s3cretpass") {
		t.Errorf("unreachable: %v (temporary %v)", err, mailaccess.IsTemporary(err))
	}
	_, err = fleet.OpenPostgres(ctx, "postgres://u:s3cretpass@127.0.0.1:bad/db", nil)
	if !errors.Is(err, mailaccess.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cretpass") {
		t.Errorf("unparsable DSN: %v", err)
	}
	if _, err := fleet.OpenSQLite(ctx, t.TempDir(), nil); !errors.Is(err, mailaccess.ErrState) {
		t.Errorf("a directory as the SQLite file: %v", err)
	}
	for _, db := range databases(t) {
		t.Run("newer/"+db.name, func(t *testing.T) {
			db.open(t, nil).Close()
			if _, err := db.sql(t).ExecContext(t.Context(), "UPDATE unimail_fleet_version SET version = 99"); err != nil {
				t.Fatal(err)
			}
			_, err := db.openErr(t, nil)
			if !errors.Is(err, fleet.ErrNewerSchema) || !errors.Is(err, mailaccess.ErrState) {
				t.Errorf("newer schema: %v", err)
			}
		})
	}
}

// jobState returns the state of the account's newest River job.
func jobState(t *testing.T, db database, id string) string {
	q := "SELECT state FROM river_job WHERE args->>'account' = $1 ORDER BY id DESC LIMIT 1"
	if db.name == "sqlite" {
		q = "SELECT state FROM river_job WHERE json_extract(args, '$.account') = $1 ORDER BY id DESC LIMIT 1"
	}
	var state string
	if err := db.sql(t).QueryRowContext(t.Context(), q, id).Scan(&state); err != nil {
		t.Fatalf("the state of %s's job: %v", id, err)
	}
	return state
}
