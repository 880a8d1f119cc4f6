package sqlstate_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/unimail/unimail/internal/pgtest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// opened is a State with what reopens it.
type opened struct {
	*sqlstate.State
	reopen func(t *testing.T) opened
}

func openSQLite(t testing.TB, path string, opts *sqlstate.Options) *sqlstate.State {
	t.Helper()
	s, err := sqlstate.OpenSQLite(ctxT(t), path, opts)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB, dsn string, opts *sqlstate.Options) *sqlstate.State {
	t.Helper()
	s, err := sqlstate.OpenPostgres(ctxT(t), dsn, opts)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newPostgres returns the DSN of a new database on the package's private
// PostgreSQL.
func newPostgres(t testing.TB) string {
	t.Helper()
	return pgtest.Shared(t).NewDatabase(t)
}

// sqlDB opens a *sql.DB that the test owns.
func sqlDB(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func conformance(t *testing.T, open func(t *testing.T) opened) {
	mailaccesstest.TestState(t, func(t *testing.T) mailaccess.State { return open(t) }, &mailaccesstest.StateOptions{
		Reopen: func(t *testing.T, s mailaccess.State) mailaccess.State {
			o := s.(opened)
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return o.reopen(t)
		},
	})
}

func TestSQLiteConformance(t *testing.T) {
	conformance(t, func(t *testing.T) opened {
		path := filepath.Join(t.TempDir(), "state.db")
		var o func(t *testing.T) opened
		o = func(t *testing.T) opened { return opened{openSQLite(t, path, nil), o} }
		return o(t)
	})
}

func TestPostgresConformance(t *testing.T) {
	conformance(t, func(t *testing.T) opened {
		dsn := newPostgres(t)
		var o func(t *testing.T) opened
		o = func(t *testing.T) opened { return opened{openPostgres(t, dsn, nil), o} }
		return o(t)
	})
}
