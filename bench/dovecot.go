package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/internal/pgtest"
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

// startDovecot is StartDovecot with the harness's options.
func startDovecot(opts *dovecottest.Options) (srv *Server, err error) {
	tb := newProgramTB("unimail-bench")
	var s *dovecottest.Server
	if err := tb.do(func() { s = dovecottest.Start(tb, opts) }); err != nil {
		tb.cleanup()
		return nil, err
	}
	return &Server{Server: s, tb: tb}, nil
}

// Append delivers raw into the user's folder while the server runs, as
// dovecottest's Append does (a local delivery into the Maildir), and
// returns its failure as an error.
func (s *Server) Append(user, folder string, raw []byte) error {
	return s.tb.do(func() { s.Server.Append(s.tb, user, folder, raw) })
}

// Save delivers raw into the user's folder with doveadm save, as
// dovecottest's Save does, and returns its failure as an error.
func (s *Server) Save(user, folder string, raw []byte) error {
	return s.tb.do(func() { s.Server.Save(s.tb, user, folder, raw) })
}

// idleSessions counts the server's IMAP session processes whose title
// (verbose_proctitle) shows that they run IDLE.
func (s *Server) idleSessions() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte("imap")) {
			continue
		}
		if bytes.Contains(b, []byte(" IDLE]")) {
			n++
		}
	}
	return n
}

// cpu returns the CPU time (user and system) that Dovecot's processes
// have used so far: the master's with its reaped children's, and its
// living processes'.
func (s *Server) cpu() time.Duration {
	master := s.PID()
	if master <= 0 {
		return 0
	}
	total := procCPU(master, true)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == master {
			continue
		}
		if ppid(pid) == master {
			total += procCPU(pid, true)
		}
	}
	return total
}

// ppid returns the parent of process pid (0 when unknown).
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// errNoPostgres is returned by startPostgres when PostgreSQL is not
// installed.
var errNoPostgres = errors.New("PostgreSQL is not installed")

// Postgres is a private PostgreSQL started for a benchmark program: the
// pgtest harness (127.0.0.1, a random password, PostgreSQL's default
// settings, fsync included) with max_connections raised to 400 for
// several worker processes.
type Postgres struct {
	*pgtest.Server
	tb *programTB
}

// startPostgres starts a private PostgreSQL as pgtest.StartWith does in a
// test.
func startPostgres() (*Postgres, error) {
	tb := newProgramTB("unimail-bench")
	var s *pgtest.Server
	if err := tb.do(func() { s = pgtest.StartWith(tb, "max_connections=400") }); err != nil {
		tb.cleanup()
		if errors.Is(err, ErrNoDovecot) { // the harness skipped: not installed
			return nil, fmt.Errorf("%w: %v", errNoPostgres, err)
		}
		return nil, err
	}
	return &Postgres{Server: s, tb: tb}, nil
}

// NewDatabase creates an empty database and returns its DSN.
func (p *Postgres) NewDatabase() (dsn string, err error) {
	err = p.tb.do(func() { dsn = p.Server.NewDatabase(p.tb) })
	return dsn, err
}

// Close stops PostgreSQL and removes its files.
func (p *Postgres) Close() { p.tb.cleanup() }

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
