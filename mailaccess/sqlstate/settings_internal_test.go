package sqlstate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/pgtest"
	"github.com/unimail/unimail/mailaccess"
)

// The settings that OpenSQLite promises hold on every connection of its
// pool, and the file is private.
func TestSQLiteSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Hold several connections at once, so that each is a different one.
	var conns []*sql.Conn
	for range 3 {
		c, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		var mode string
		var sync, busy int
		if err := c.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || busy != 10000 {
			t.Fatalf("connection %d: journal_mode %s, synchronous %d, busy_timeout %d; want wal, 2 (FULL), 10000", i, mode, sync, busy)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file's mode is %v, want 0600", fi.Mode().Perm())
	}
}

// The SQLite file may have a name that a URI would misread.
func TestSQLiteOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?#%20x", "state ü?.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMark(t.Context(), "mb", "1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the path given: %v", err)
	}
	s, err = OpenSQLite(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m, err := s.Mark(t.Context(), "mb"); err != nil || m != "1" {
		t.Fatalf("Mark after reopening: %q, %v", m, err)
	}
}

// explain returns the plan of a query as one string.
func explain(t *testing.T, db *sql.DB, prefix, q string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), prefix+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, fmt.Sprint(vals[len(vals)-1]))
	}
	return strings.Join(plan, "\n")
}

// fillMany puts records in many mailboxes, so that a planner prefers
// its indexes to a scan.
func fillMany(t *testing.T, s *State, mailboxes int) {
	t.Helper()
	for m := range mailboxes {
		var recs []mailaccess.Record
		for i := range 20 {
			uid := fmt.Sprintf("1/%d", i)
			recs = append(recs, mailaccess.Record{UID: mailaccess.UID(uid), Epoch: fmt.Sprint(i % 2), Delivered: time.Unix(0, 1), SHA256: sha256.Sum256([]byte(uid))})
		}
		if err := s.Put(t.Context(), fmt.Sprintf("mb%d", m), recs...); err != nil {
			t.Fatal(err)
		}
	}
}

// Lookup and Count are index lookups: the records' primary key, and the
// counts' primary key; neither scans a table.
func TestQueriesUseIndexes(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "state.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fillMany(t, s, 20)
		uids, _ := s.uidsArg([]string{"1/1", "1/2"})
		for name, plan := range map[string]string{
			"lookup": explain(t, s.db, "EXPLAIN QUERY PLAN ", s.q.lookup, "mb7", uids),
			"count":  explain(t, s.db, "EXPLAIN QUERY PLAN ", s.q.count, "mb7", "1"),
		} {
			t.Logf("%s:\n%s", name, plan)
			if strings.Contains(plan, "SCAN unimail_") || !strings.Contains(plan, "USING PRIMARY KEY") {
				t.Fatalf("%s does not use the primary key:\n%s", name, plan)
			}
		}
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := OpenPostgres(t.Context(), pgtest.Shared(t).NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fillMany(t, s, 300) // a few pages of counts: PostgreSQL scans a table of one
		if _, err := s.db.ExecContext(t.Context(), "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		for name, plan := range map[string]string{
			"lookup": explain(t, s.db, "EXPLAIN ", s.q.lookup, "mb7", []string{"1/1", "1/2"}),
			"count":  explain(t, s.db, "EXPLAIN ", s.q.count, "mb7", "1"),
		} {
			t.Logf("%s:\n%s", name, plan)
			if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "Index") {
				t.Fatalf("%s does not use an index:\n%s", name, plan)
			}
		}
	})
}

// A write transaction on PostgreSQL commits durably even where the
// session turned synchronous_commit off, and leaves the session's setting
// as it was afterwards.
func TestPostgresWriteIsDurable(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	s, err := OpenPostgres(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setting := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) string {
		var v string
		if err := q.QueryRowContext(t.Context(), "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := c.ExecContext(t.Context(), "SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	tx, err := c.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), s.q.lock, s.prefix+"mb"); err != nil {
		t.Fatal(err)
	}
	if v := setting(tx); v != "local" {
		t.Fatalf("synchronous_commit in the write transaction: %s, want local", v)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v := setting(c); v != "off" {
		t.Fatalf("synchronous_commit after the transaction: %s, want the session's off", v)
	}
	// Where it is on, the lock leaves it on.
	if _, err := c.ExecContext(t.Context(), "SET synchronous_commit = remote_apply"); err != nil {
		t.Fatal(err)
	}
	tx, err = c.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(t.Context(), s.q.lock, s.prefix+"mb"); err != nil {
		t.Fatal(err)
	}
	if v := setting(tx); v != "remote_apply" {
		t.Fatalf("synchronous_commit remote_apply became %s", v)
	}
}
