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

// TestStopCancelsCleanly: a Stop whose context ends before a session
// finishes cancels it: the Fetcher aborts (no QUIT, so POP3 deletes
// nothing), what was recorded stays recorded, and the account is due at
// once for the next worker, which delivers the rest and nothing twice.
func TestStopCancelsCleanly(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv, addr, _ := popServer(t, nil, "p", 1, 3)
			inHandler := make(chan struct{})
			var aGot []string
			slow := func(ctx context.Context, m *mailaccess.Message) error {
				b, err := io.ReadAll(m.Body)
				if err != nil {
					return err
				}
				if len(aGot) == 1 {
					close(inHandler)
					<-ctx.Done() // a handler that waits, until the stop cancels it
					return ctx.Err()
				}
				aGot = append(aGot, messageID(b))
				return nil
			}
			optsA := testOptions(slow)
			optsA.Batch = mailaccess.Batch{Messages: 1}
			a := db.open(t, optsA)
			if err := a.Add(t.Context(), fleet.Account{ID: "acct", URL: fmt.Sprintf("pop3://p0@%s", addr), Handler: "collect", Retention: mailaccess.DeleteAfterFetch, Every: 200 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			if err := a.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-inHandler:
			case <-time.After(time.Minute):
				t.Fatal("the account never ran")
			}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if err := a.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if n := len(srv.Messages("p0")); n != 3 {
				t.Fatalf("the server holds %d messages after the cancelled session, want 3 (nothing committed)", n)
			}
			c := newCollector()
			b := db.open(t, testOptions(c.handle))
			if err := b.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, "the next worker drained the account", func() bool { return len(srv.Messages("p0")) == 0 })
			if got := c.ids("acct"); len(got) != 2 || got[0] == aGot[0] || got[1] == aGot[0] {
				t.Errorf("worker A took %v, worker B %v; want the two others, once", aGot, got)
			}
		})
	}
}
