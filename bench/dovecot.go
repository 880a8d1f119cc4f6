package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/unimail/unimail/internal/dovecottest"
)

// ErrNoDovecot is returned by StartDovecot when Dovecot is not installed.
var ErrNoDovecot = errors.New("dovecot is not installed")

// Server is a private Dovecot 2.3 started for a benchmark program, outside
// of a test: the dovecottest harness (four listeners on 127.0.0.1, its own
// configuration, users alice and bob with password alice-password, files
// on tmpfs when there is room).
type Server struct {
	*dovecottest.Server
	tb *programTB
}

// StartDovecot starts a private Dovecot as dovecottest.Start does in a
// test. It returns an error matching ErrNoDovecot when Dovecot is not
// installed, and any other failure (with Dovecot's log) as an error. Close
// stops it.
func StartDovecot() (srv *Server, err error) {
	tb := newProgramTB("unimail-bench")
	defer func() {
		if err != nil {
			tb.cleanup()
		}
	}()
	var s *dovecottest.Server
	users := map[string]string{benchUser: benchPassword, accountUser: benchPassword}
	err = tb.do(func() { s = dovecottest.Start(tb, &dovecottest.Options{Users: users}) })
	if err != nil {
		return nil, err
	}
	return &Server{Server: s, tb: tb}, nil
}

// Seed replaces the content of the user's folder with raws, as
// dovecottest's Seed does, and returns its failure as an error.
func (s *Server) Seed(user, folder string, raws [][]byte) error {
	return s.tb.do(func() { s.Server.Seed(s.tb, user, folder, raws) })
}

// Close stops Dovecot and removes its files.
func (s *Server) Close() {
	s.tb.cleanup()
}

// programTB is the testing.TB that the dovecottest harness gets when a
// program, not a test, starts Dovecot: Fatal and Skip end the harness call
// (do turns them into errors), Cleanup functions run at cleanup, and logs
// go to stderr. Every method of testing.TB is implemented; the embedded
// interface is nil and only satisfies its unexported method.
type programTB struct {
	testing.TB
	name     string
	cleanups []func()
	failed   bool
	skipped  bool
	ctx      context.Context
	cancel   context.CancelFunc
}

func newProgramTB(name string) *programTB {
	ctx, cancel := context.WithCancel(context.Background())
	return &programTB{name: name, ctx: ctx, cancel: cancel}
}

// stopped is the panic value of FailNow and SkipNow.
type stopped struct {
	skip bool
	msg  string
}

// do runs f and turns a Fatal or Skip inside it into an error.
func (t *programTB) do(f func()) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		s, ok := p.(stopped)
		if !ok {
			panic(p)
		}
		if s.skip {
			err = fmt.Errorf("%w: %s", ErrNoDovecot, s.msg)
			return
		}
		err = errors.New(s.msg)
	}()
	f()
	return nil
}

// cleanup runs the Cleanup functions, last registered first.
func (t *programTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
	t.cancel()
}

func (t *programTB) ArtifactDir() string    { return t.TempDir() }
func (t *programTB) Attr(key, value string) {}
func (t *programTB) Cleanup(f func())       { t.cleanups = append(t.cleanups, f) }
func (t *programTB) Error(args ...any)      { t.Log(args...); t.failed = true }
func (t *programTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.failed = true
}
func (t *programTB) Fail()        { t.failed = true }
func (t *programTB) FailNow()     { t.failed = true; panic(stopped{msg: "failed"}) }
func (t *programTB) Failed() bool { return t.failed }
func (t *programTB) Fatal(args ...any) {
	t.failed = true
	panic(stopped{msg: strings.TrimSpace(fmt.Sprintln(args...))})
}
func (t *programTB) Fatalf(format string, args ...any) {
	t.failed = true
	panic(stopped{msg: fmt.Sprintf(format, args...)})
}
func (t *programTB) Helper()         {}
func (t *programTB) Log(args ...any) { fmt.Fprintln(os.Stderr, args...) }
func (t *programTB) Logf(f string, args ...any) {
	fmt.Fprintf(os.Stderr, strings.TrimSuffix(f, "\n")+"\n", args...)
}
func (t *programTB) Name() string { return t.name }
func (t *programTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}
func (t *programTB) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		t.Fatalf("chdir: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatalf("chdir: %v", err)
	}
	t.Cleanup(func() { _ = os.Chdir(old) })
}
func (t *programTB) Skip(args ...any) {
	t.skipped = true
	panic(stopped{skip: true, msg: strings.TrimSpace(fmt.Sprintln(args...))})
}
func (t *programTB) SkipNow() { t.skipped = true; panic(stopped{skip: true, msg: "skipped"}) }
func (t *programTB) Skipf(format string, args ...any) {
	t.skipped = true
	panic(stopped{skip: true, msg: fmt.Sprintf(format, args...)})
}
func (t *programTB) Skipped() bool { return t.skipped }
func (t *programTB) TempDir() string {
	d, err := os.MkdirTemp("", "unimail-bench-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (t *programTB) Context() context.Context { return t.ctx }
func (t *programTB) Output() io.Writer        { return os.Stderr }
