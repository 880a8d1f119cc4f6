package sqlstate_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

var errStale = errors.New("the token moved on")

// TestFenced: the writes of a fenced view run the check in their own
// transaction; once the token it checks has moved on, Put, Forget and
// SetMark store nothing and return the check's error, while reads go on.
func TestFenced(t *testing.T) {
	check := func(t *testing.T, db *sql.DB, forShare string) {
		ctx := ctxT(t)
		s, err := sqlstate.Open(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := db.ExecContext(ctx, "CREATE TABLE lease (id text PRIMARY KEY, token bigint NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO lease VALUES ('mb', 1)"); err != nil {
			t.Fatal(err)
		}
		var calls int
		v := s.Fenced(func(ctx context.Context, tx *sql.Tx) error {
			calls++
			var tok int64
			if err := tx.QueryRowContext(ctx, "SELECT token FROM lease WHERE id = 'mb'"+forShare).Scan(&tok); err != nil {
				return err
			}
			if tok != 1 {
				return errStale
			}
			return nil
		})
		if err := v.Put(ctx, "mb", record("1")); err != nil || calls != 1 {
			t.Fatalf("Put with the token held: %v, check called %d times", err, calls)
		}
		if _, err := db.ExecContext(ctx, "UPDATE lease SET token = 2"); err != nil {
			t.Fatal(err)
		}
		err = v.Put(ctx, "mb", record("2"))
		wantStateError(t, "Put with the token lost", err, errStale)
		wantStateError(t, "SetMark with the token lost", v.SetMark(ctx, "mb", "2"), errStale)
		wantStateError(t, "Forget with the token lost", v.Forget(ctx, "mb", "1"), errStale)
		recs, err := v.Lookup(ctx, "mb", "1", "2")
		if err != nil || len(recs) != 1 || recs[0].UID != "1" {
			t.Fatalf("Lookup through the view = %v, %v; want record 1 only", recs, err)
		}
		if m, err := s.Mark(ctx, "mb"); err != nil || m != "" {
			t.Fatalf("Mark = %q, %v; want none", m, err)
		}
		// The State itself is not fenced, and closing the view leaves it open.
		v.Close()
		if err := s.Put(ctx, "mb", record("2")); err != nil {
			t.Fatalf("Put on the State after closing the view: %v", err)
		}
		s.Close()
		if err := v.Put(ctx, "mb", record("3")); !errors.Is(err, mailaccess.ErrState) {
			t.Fatalf("Put on a view of a closed State = %v", err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		check(t, sqlDB(t, "sqlite", filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(5000)&_txlock=immediate"), "")
	})
	t.Run("postgres", func(t *testing.T) { check(t, sqlDB(t, "pgx", newPostgres(t)), " FOR SHARE") })
}
