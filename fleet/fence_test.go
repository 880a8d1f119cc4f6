package fleet_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

// TestFencedWorkerCannotDelete: worker A runs an account and stalls in
// its handler; its job is handed to worker B (as River's rescuer does
// with the job of a worker that stopped answering), which runs the
// account. When A goes on, it can neither record nor delete: its session
// is aborted and no STORE or EXPUNGE leaves its connection, while B's
// run delivered and deleted everything.
func TestFencedWorkerCannotDelete(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			const msgs = 3
			srv, addr, _ := imapServer(t, nil, "u", 1, msgs)
			blocked, release := make(chan struct{}), make(chan struct{})
			var aGot int
			stall := func(ctx context.Context, m *mailaccess.Message) error {
				if _, err := io.ReadAll(m.Body); err != nil {
					return err
				}
				aGot++
				if aGot == 1 {
					close(blocked)
					<-release // ignores ctx, as a stuck handler would
				}
				return nil
			}
			optsA := testOptions(stall)
			optsA.Batch = mailaccess.Batch{Messages: 1}
			optsA.JobTimeout, optsA.RescueAfter = time.Minute, 2*time.Minute
			optsA.Workers = 1 // busy with the stalled run: A cannot take the job again
			a := db.open(t, optsA)
			acct := fleet.Account{ID: "acct", URL: fmt.Sprintf("imap://u0@%s/INBOX", addr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: time.Hour}
			if err := a.Add(t.Context(), acct); err != nil {
				t.Fatal(err)
			}
			// Make it due now rather than within the hour.
			raw := db.sql(t)
			if _, err := raw.ExecContext(t.Context(), "UPDATE river_job SET scheduled_at = "+past(db.name)); err != nil {
				t.Fatal(err)
			}
			if err := a.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-blocked:
			case <-time.After(time.Minute):
				t.Fatal("worker A never ran the account")
			}
			aConns := map[int]bool{}
			for _, c := range srv.Commands() {
				aConns[c.Conn] = true
			}
			// Hand the running job to B, as the rescuer does.
			if _, err := raw.ExecContext(t.Context(), "UPDATE river_job SET state = 'available', scheduled_at = "+past(db.name)+" WHERE state = 'running'"); err != nil {
				t.Fatal(err)
			}
			cB := newCollector()
			b := db.open(t, testOptions(cB.handle))
			if err := b.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, "worker B delivered and deleted every message", func() bool {
				return cB.count("acct") == msgs && len(srv.Messages("u0", "INBOX")) == 0
			})
			close(release)
			waitFor(t, time.Minute, "worker A's run ended", func() bool { st := a.Stats(); return st.Runs == 1 })
			st := a.Stats()
			if st.Fenced != 1 || st.Errors["fenced"] != 1 || st.Fetched != 0 {
				t.Errorf("worker A's stats = %+v; want one fenced run that recorded nothing", st)
			}
			for _, c := range srv.Commands() {
				if aConns[c.Conn] && (c.Name == "UID STORE" || c.Name == "UID EXPUNGE" || c.Name == "EXPUNGE" || c.Name == "UID MOVE") {
					t.Errorf("worker A sent %q after losing the account", c.Line)
				}
			}
			if aGot != 1 {
				t.Errorf("worker A's handler ran %d times, want 1 (its run stops at the fence)", aGot)
			}
		})
	}
}

// past is an SQL expression for a moment in the past, in River's format.
func past(dialect string) string {
	if dialect == "sqlite" {
		return "datetime('now', '-1 second', 'subsec')"
	}
	return "now() - interval '1 second'"
}
