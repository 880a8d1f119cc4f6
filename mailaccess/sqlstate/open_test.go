package sqlstate_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/pgtest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

func record(uid string) mailaccess.Record {
	return mailaccess.Record{UID: mailaccess.UID(uid), Epoch: "7", Delivered: time.Unix(1700000000, 5).UTC(), Size: 42, SHA256: sha256.Sum256([]byte(uid))}
}

// wantStateError fails the test unless err matches mailaccess.ErrState
// and every one of also.
func wantStateError(t *testing.T, what string, err error, also ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, mailaccess.ErrState) {
		t.Fatalf("%s: %v does not match ErrState", what, err)
	}
	for _, k := range also {
		if !errors.Is(err, k) {
			t.Fatalf("%s: %v does not match %v", what, err, k)
		}
	}
}

// TestNewerSchemaRefused: a database whose schema a newer version of the
// package wrote is refused with a clear error, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	check := func(t *testing.T, open func() (*sqlstate.State, error), db *sql.DB) {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctxT(t), "mb", record("1")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := db.Exec("UPDATE unimail_schema_version SET version = version + 1"); err != nil {
			t.Fatal(err)
		}
		_, err = open()
		wantStateError(t, "opening a newer schema", err)
		if !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "upgrade unimail") {
			t.Fatalf("the error does not say what to do: %v", err)
		}
		t.Logf("error: %v", err)
		if _, err := db.Exec("UPDATE unimail_schema_version SET version = version - 1"); err != nil {
			t.Fatal(err)
		}
		s, err = open()
		if err != nil {
			t.Fatalf("reopening after the version was put back: %v", err)
		}
		defer s.Close()
		if recs, err := s.Records(ctxT(t), "mb"); err != nil || len(recs) != 1 {
			t.Fatalf("records after the refusal: %v, %v", recs, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		check(t, func() (*sqlstate.State, error) { return sqlstate.OpenSQLite(ctxT(t), path, nil) }, sqlDB(t, "sqlite", path))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := newPostgres(t)
		check(t, func() (*sqlstate.State, error) { return sqlstate.OpenPostgres(ctxT(t), dsn, nil) }, sqlDB(t, "pgx", dsn))
	})
}

// TestConcurrentFirstOpen: processes that open a new database at the same
// time create the schema once, without failing (here, separate
// connection pools stand for the processes).
func TestConcurrentFirstOpen(t *testing.T) {
	const n = 6
	check := func(t *testing.T, open func() (*sqlstate.State, error), db *sql.DB) {
		var wg sync.WaitGroup
		states := make([]*sqlstate.State, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { states[i], errs[i] = open() })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			defer states[i].Close()
		}
		for i, s := range states {
			if err := s.Put(ctxT(t), "mb", record(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		var rows int
		if err := db.QueryRow("SELECT count(*) FROM unimail_schema_version").Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("schema_version holds %d rows (%v)", rows, err)
		}
		if total, _, err := states[0].Count(ctxT(t), "mb", "7"); err != nil || total != n {
			t.Fatalf("Count = %d, %v; want %d", total, err, n)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		check(t, func() (*sqlstate.State, error) { return sqlstate.OpenSQLite(ctxT(t), path, nil) }, sqlDB(t, "sqlite", path))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := newPostgres(t)
		check(t, func() (*sqlstate.State, error) { return sqlstate.OpenPostgres(ctxT(t), dsn, nil) }, sqlDB(t, "pgx", dsn))
	})
}

// TestSeveralProcessesWrite: States on one database through separate
// connection pools (as separate processes have) write at the same time,
// to the same mailbox and to their own, without an error (SQLite waits
// for its write lock instead of answering SQLITE_BUSY; PostgreSQL does
// not deadlock), and the counts agree with the records afterwards.
func TestSeveralProcessesWrite(t *testing.T) {
	const procs, workers, rounds = 3, 3, 30
	check := func(t *testing.T, open func() *sqlstate.State) {
		states := make([]*sqlstate.State, procs)
		for i := range states {
			states[i] = open()
		}
		var wg sync.WaitGroup
		errs := make(chan error, procs*workers)
		for p, s := range states {
			for w := range workers {
				wg.Go(func() {
					own := fmt.Sprintf("own/%d/%d", p, w)
					for i := range rounds {
						// Shared: overlapping batches of the same UIDs.
						batch := []mailaccess.Record{record(fmt.Sprint(i)), record(fmt.Sprint(i + 1)), record(fmt.Sprint(i + 2))}
						batch[0].Epoch = fmt.Sprint(p)
						if err := s.Put(context.Background(), "shared", batch...); err != nil {
							errs <- err
							return
						}
						if err := s.Put(context.Background(), own, record(fmt.Sprint(i))); err != nil {
							errs <- err
							return
						}
						if i%5 == 4 {
							if err := s.Forget(context.Background(), "shared", mailaccess.UID(fmt.Sprint(i-2))); err != nil {
								errs <- err
								return
							}
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		s := states[0]
		for _, mb := range []string{"shared", "own/2/1"} {
			recs, err := s.Records(ctxT(t), mb)
			if err != nil {
				t.Fatal(err)
			}
			byEpoch := map[string]int{}
			for _, r := range recs {
				byEpoch[r.Epoch]++
			}
			for _, ep := range []string{"0", "1", "2", "7"} {
				total, in, err := s.Count(ctxT(t), mb, ep)
				if err != nil || total != len(recs) || in != byEpoch[ep] {
					t.Fatalf("Count(%q, %q) = %d, %d, %v; the records say %d, %d", mb, ep, total, in, err, len(recs), byEpoch[ep])
				}
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		n := 0
		check(t, func() *sqlstate.State {
			n++
			if n == 1 {
				return openSQLite(t, path, nil)
			}
			// An application's own pool, with only a busy timeout.
			s, err := sqlstate.Open(ctxT(t), sqlDB(t, "sqlite", path+"?_pragma=busy_timeout(10000)"), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := newPostgres(t)
		n := 0
		check(t, func() *sqlstate.State {
			n++
			if n == 1 {
				return openPostgres(t, dsn, nil)
			}
			s, err := sqlstate.Open(ctxT(t), sqlDB(t, "pgx", dsn), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

// TestOwnDB: a State on a *sql.DB that the application owns, with a
// table prefix of its own: it works as OpenSQLite's and OpenPostgres's
// do, Close leaves the database open, and a new State on it finds what
// the first stored.
func TestOwnDB(t *testing.T) {
	check := func(t *testing.T, db *sql.DB) {
		opts := &sqlstate.Options{TablePrefix: "app_mail_"}
		s, err := sqlstate.Open(ctxT(t), db, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := []mailaccess.Record{record("1"), record("2"), record("3")}
		if err := s.Put(ctxT(t), "mb", want...); err != nil {
			t.Fatal(err)
		}
		if err := s.Forget(ctxT(t), "mb", "2"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMark(ctxT(t), "mb", "3"); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := db.Ping(); err != nil {
			t.Fatalf("Close closed the application's database: %v", err)
		}
		s, err = sqlstate.Open(ctxT(t), db, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		recs, err := s.Lookup(ctxT(t), "mb", "1", "2", "3")
		if err != nil || len(recs) != 2 || recs[0].UID == "2" || recs[1].UID == "2" {
			t.Fatalf("Lookup after reopening: %v, %v", recs, err)
		}
		if total, in, err := s.Count(ctxT(t), "mb", "7"); err != nil || total != 2 || in != 2 {
			t.Fatalf("Count = %d, %d, %v", total, in, err)
		}
		if m, err := s.Mark(ctxT(t), "mb"); err != nil || m != "3" {
			t.Fatalf("Mark = %q, %v", m, err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM app_mail_records").Scan(&n); err != nil || n != 2 {
			t.Fatalf("app_mail_records: %d rows, %v", n, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		check(t, sqlDB(t, "sqlite", filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(5000)"))
	})
	t.Run("postgres", func(t *testing.T) { check(t, sqlDB(t, "pgx", newPostgres(t))) })
}

// TestTablePrefix: States with different prefixes in one database are
// independent; a prefix that is not a plain identifier is refused.
func TestTablePrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	a := openSQLite(t, path, nil)
	b := openSQLite(t, path, &sqlstate.Options{TablePrefix: "tenant_b_"})
	if err := a.Put(ctxT(t), "mb", record("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMark(ctxT(t), "mb", "9"); err != nil {
		t.Fatal(err)
	}
	if recs, err := b.Records(ctxT(t), "mb"); err != nil || len(recs) != 0 {
		t.Fatalf("records seen through another prefix: %v, %v", recs, err)
	}
	if m, err := a.Mark(ctxT(t), "mb"); err != nil || m != "" {
		t.Fatalf("mark seen through another prefix: %q, %v", m, err)
	}
	var n int
	if err := sqlDB(t, "sqlite", path).QueryRow("SELECT count(*) FROM tenant_b_marks").Scan(&n); err != nil || n != 1 {
		t.Fatalf("tenant_b_marks: %d rows, %v", n, err)
	}
	for _, bad := range []string{"Upper_", "1abc", "a-b", "a b", "x; DROP TABLE y; --", strings.Repeat("a", 41)} {
		_, err := sqlstate.OpenSQLite(ctxT(t), path, &sqlstate.Options{TablePrefix: bad})
		wantStateError(t, fmt.Sprintf("prefix %q", bad), err, mailaccess.ErrInvalidArgument)
	}
}

// fakeDriver is a database/sql driver that sqlstate does not know.
type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return nil, errors.New("not a database") }

func TestUnsupportedDriver(t *testing.T) {
	sql.Register("unimail-fake", fakeDriver{})
	db := sqlDB(t, "unimail-fake", "")
	_, err := sqlstate.Open(ctxT(t), db, nil)
	wantStateError(t, "a driver that sqlstate does not know", err, mailaccess.ErrInvalidArgument)
	if !strings.Contains(err.Error(), "fakeDriver") {
		t.Fatalf("the error does not name the driver: %v", err)
	}
}

// TestUnreachablePostgres: a database that cannot be reached fails the
// open quickly with an ErrState error that says so, which is temporary
// (mailaccess.IsTemporary) and never shows the password.
func TestUnreachablePostgres(t *testing.T) {
	const secret = "S3cret-pw-7f3a"
	quick := func(t *testing.T, dsn string, limit time.Duration, ctx context.Context) error {
		t.Helper()
		begin := time.Now()
		s, err := sqlstate.OpenPostgres(ctx, dsn, nil)
		took := time.Since(begin)
		if err == nil {
			s.Close()
			t.Fatal("opened an unreachable database")
		}
		wantStateError(t, "unreachable database", err)
		if took > limit {
			t.Fatalf("the open took %v (limit %v): %v", took, limit, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows the password: %v", err)
		}
		t.Logf("%v after %v", err, took.Round(time.Millisecond))
		return err
	}
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		err = quick(t, "postgres://app:"+secret+"@"+addr+"/mail", 2*time.Second, ctxT(t))
		if !mailaccess.IsTemporary(err) {
			t.Fatalf("a refused connection is not temporary: %v", err)
		}
		quick(t, "host=127.0.0.1 port="+strings.Split(addr, ":")[1]+" user=app password='"+secret+"' dbname=mail", 2*time.Second, ctxT(t))
	})
	t.Run("silent", func(t *testing.T) {
		// A server that accepts and never answers.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		// The caller's deadline ends the open: not temporary, since the
		// caller stopped it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = quick(t, "postgres://app:"+secret+"@"+l.Addr().String()+"/mail?sslmode=disable", 2*time.Second, ctx)
		if mailaccess.IsTemporary(err) {
			t.Fatalf("the end of the caller's context is temporary: %v", err)
		}
		// The DSN's connect_timeout ends it: the database did not answer,
		// which retrying may cure.
		err = quick(t, "postgres://app:"+secret+"@"+l.Addr().String()+"/mail?sslmode=disable&connect_timeout=1", 2*time.Second, context.Background())
		if !mailaccess.IsTemporary(err) || !strings.Contains(err.Error(), "did not answer in time") {
			t.Fatalf("a database that does not answer within connect_timeout: %v, want a temporary error that says so", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := pgtest.Shared(t)
		dsn := strings.Replace(srv.DSN("postgres"), srv.Password, secret, 1)
		err := quick(t, dsn, 5*time.Second, ctxT(t))
		if mailaccess.IsTemporary(err) {
			t.Fatalf("a refused password is temporary: %v", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, dsn := range []string{
			"postgres://app:" + secret + "@127.0.0.1:notaport/mail",
			"postgres://app:" + secret + "@[::1/mail",
			"host=127.0.0.1 password='" + secret + "' port=abc",
			"host=127.0.0.1 password=" + secret + " sslmode=nonsense",
		} {
			err := quick(t, dsn, time.Second, ctxT(t))
			if !errors.Is(err, mailaccess.ErrInvalidArgument) {
				t.Errorf("%s: %v does not match ErrInvalidArgument", strings.ReplaceAll(dsn, secret, "xxx"), err)
			}
		}
	})
}

func TestUnusableSQLitePath(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "missing", "state.db"), dir} {
		s, err := sqlstate.OpenSQLite(ctxT(t), path, nil)
		if err == nil {
			s.Close()
			t.Fatalf("opened %q", path)
		}
		wantStateError(t, fmt.Sprintf("path %q", path), err)
	}
	// A file that is not a database.
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlstate.OpenSQLite(ctxT(t), junk, nil)
	wantStateError(t, "a file that is not a database", err)
}

// TestClose: a closed State refuses every call; a State of Open leaves
// the application's database open.
func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantStateError(t, "Put after Close", s.Put(ctxT(t), "mb", record("1")))
	_, err := s.Records(ctxT(t), "mb")
	wantStateError(t, "Records after Close", err)
	_, err = s.Mark(ctxT(t), "mb")
	wantStateError(t, "Mark after Close", err)

	db := sqlDB(t, "sqlite", path)
	own, err := sqlstate.Open(ctxT(t), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	own.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("the application's database was closed: %v", err)
	}
}

// TestTextLimits: what cannot be stored as text (invalid UTF-8, NUL) and
// a delivery time outside int64 nanoseconds are refused by Put and
// SetMark, with nothing stored; reads of such names find nothing.
func TestTextLimits(t *testing.T) {
	for name, s := range map[string]*sqlstate.State{
		"sqlite":   openSQLite(t, filepath.Join(t.TempDir(), "state.db"), nil),
		"postgres": openPostgres(t, newPostgres(t), nil),
	} {
		t.Run(name, func(t *testing.T) {
			bad := "imap://a@b/\xff"
			wantStateError(t, "Put to an invalid mailbox name", s.Put(ctxT(t), bad, record("1")), mailaccess.ErrInvalidArgument)
			r := record("2")
			r.Epoch = "a\x00b"
			wantStateError(t, "Put with a NUL in the epoch", s.Put(ctxT(t), "mb", record("1"), r), mailaccess.ErrInvalidArgument)
			r = record("3")
			r.Delivered = time.Time{}
			wantStateError(t, "Put of the zero time", s.Put(ctxT(t), "mb", r), mailaccess.ErrInvalidArgument)
			wantStateError(t, "SetMark of an invalid UID", s.SetMark(ctxT(t), "mb", "\xfe"), mailaccess.ErrInvalidArgument)
			if recs, err := s.Records(ctxT(t), "mb"); err != nil || len(recs) != 0 {
				t.Fatalf("a refused Put stored %v (%v)", recs, err)
			}
			if err := s.Put(ctxT(t), "mb", record("1")); err != nil {
				t.Fatal(err)
			}
			if recs, err := s.Lookup(ctxT(t), "mb", "1", "\xff", "a\x00"); err != nil || len(recs) != 1 {
				t.Fatalf("Lookup with invalid UIDs: %v, %v", recs, err)
			}
			if recs, err := s.Records(ctxT(t), bad); err != nil || len(recs) != 0 {
				t.Fatalf("Records of an invalid name: %v, %v", recs, err)
			}
			if total, in, err := s.Count(ctxT(t), "mb", "\xff"); err != nil || total != 1 || in != 0 {
				t.Fatalf("Count with an invalid epoch: %d, %d, %v", total, in, err)
			}
			if err := s.Forget(ctxT(t), "mb", "\xff"); err != nil {
				t.Fatalf("Forget of an invalid UID: %v", err)
			}
		})
	}
}
