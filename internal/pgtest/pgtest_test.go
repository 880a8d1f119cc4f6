package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// A server of its own answers on 127.0.0.1 only, asks for the password,
// runs as an unprivileged user, and is gone, directory and processes,
// once stopped.
func TestStartAndStop(t *testing.T) {
	begin := time.Now()
	s := Start(t)
	t.Logf("initdb and start: %v", time.Since(begin).Round(time.Millisecond))
	c := connect(t, s.DSN("postgres"))
	var listen, version string
	if err := c.QueryRow(t.Context(), "SELECT current_setting('listen_addresses'), current_setting('server_version_num')").Scan(&listen, &version); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q", listen)
	}
	if s.Version == "" || !strings.HasPrefix(version, s.Version) {
		t.Fatalf("server version %s, binaries of version %q", version, s.Version)
	}
	// A wrong password is refused.
	bad := strings.Replace(s.DSN("postgres"), s.Password, "wrong-password", 1)
	if _, err := pgx.Connect(t.Context(), bad); err == nil {
		t.Fatal("a wrong password was accepted")
	} else if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("wrong password: %v, want SQLSTATE 28P01", err)
	}
	pid := s.cmd.Process.Pid
	if os.Geteuid() == 0 {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err == nil && strings.Contains(string(st), "\nUid:\t0\t") {
			t.Fatalf("postgres runs as root:\n%s", st)
		}
	}
	c.Close(t.Context())
	begin = time.Now()
	s.stop()
	t.Logf("stop: %v", time.Since(begin).Round(time.Millisecond))
	if syscall.Kill(-pid, 0) == nil {
		t.Fatal("processes of the server are left after stop")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s is left after stop: %v", s.Dir, err)
	}
}

// The shared server is started once; each NewDatabase is empty and
// separate from the others.
func TestSharedAndNewDatabase(t *testing.T) {
	s := Shared(t)
	if again := Shared(t); again != s {
		t.Fatal("Shared started a second server")
	}
	begin := time.Now()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	t.Logf("two databases: %v", time.Since(begin).Round(time.Millisecond))
	if a == b {
		t.Fatalf("the same database twice: %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	if _, err := ca.Exec(t.Context(), "CREATE TABLE x (n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Exec(t.Context(), "SELECT n FROM x"); err == nil {
		t.Fatal("a table of one database is seen in another")
	}
}

func TestMissingPostgresSkipsOrFails(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		require  string
		wantSkip bool
	}{
		{"", true}, {"0", true}, {"1", false}, {"true", false},
	} {
		env := map[string]string{"PATH": empty, RequireEnv: tc.require}
		getenv := func(k string) string { return env[k] }
		_, err := start(getenv, empty)
		if err == nil {
			t.Fatal("started without PostgreSQL")
		}
		rec := &recorder{TB: t}
		fail(rec, getenv, err)
		if rec.skipped != tc.wantSkip || rec.failed == tc.wantSkip {
			t.Errorf("%s=%q: skipped=%v failed=%v, want skipped=%v", RequireEnv, tc.require, rec.skipped, rec.failed, tc.wantSkip)
		}
		if !strings.Contains(rec.msg, "PostgreSQL is not installed") || strings.Contains(rec.msg, "\n") {
			t.Errorf("reason is not one line naming the cause: %q", rec.msg)
		}
	}
	// Other failures fail the test, whatever RequireEnv says.
	rec := &recorder{TB: t}
	fail(rec, func(string) string { return "" }, errors.New("initdb: exit status 1"))
	if !rec.failed {
		t.Error("a failed initdb did not fail the test")
	}
}

// recorder is a testing.TB that records Skip and Fatal instead of acting.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}

func TestFindBinaries(t *testing.T) {
	root := t.TempDir()
	exe := func(dir string, names ...string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := findBinaries(root, ""); err == nil {
		t.Fatal("found binaries in an empty directory")
	}
	exe(filepath.Join(root, "9.6", "bin"), "initdb", "postgres")
	exe(filepath.Join(root, "13", "bin"), "initdb", "postgres")
	exe(filepath.Join(root, "17", "bin"), "initdb") // incomplete
	exe(filepath.Join(root, "common", "bin"), "initdb", "postgres")
	bin, v, err := findBinaries(root, "")
	if err != nil || v != "13" || bin != filepath.Join(root, "13", "bin") {
		t.Fatalf("findBinaries = %q, %q, %v; want version 13 (newer than 9.6, and 17 lacks postgres)", bin, v, err)
	}
	exe(filepath.Join(root, "17", "bin"), "postgres")
	if _, v, _ := findBinaries(root, ""); v != "17" {
		t.Fatalf("version %q, want 17", v)
	}
	// Without Debian's layout, $PATH.
	path := t.TempDir()
	exe(path, "initdb", "postgres")
	bin, v, err = findBinaries(t.TempDir(), "relative"+string(os.PathListSeparator)+path)
	if err != nil || bin != path || v != "" {
		t.Fatalf("from $PATH: %q, %q, %v", bin, v, err)
	}
}
