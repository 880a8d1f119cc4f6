// Package pgtest starts a private PostgreSQL for tests, so that code on
// PostgreSQL (package mailaccess/sqlstate) is tested against a real server
// rather than a fake.
//
// # Usage
//
// A package whose tests share one server (cheaper: initdb takes a couple
// of seconds) runs them through Main and asks Shared for the server:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.Shared(t).NewDatabase(t) // a database of its own
//		db, err := sql.Open("pgx", dsn)
//		...
//	}
//
// Start gives a test a server of its own instead, stopped when the test
// ends.
//
// Start and Shared skip the test when PostgreSQL is not installed (initdb
// and postgres in the newest /usr/lib/postgresql/<version>/bin, as
// Debian's postgresql package installs them, or else in $PATH), unless the
// environment variable UNIMAIL_REQUIRE_POSTGRES=1 is set, as in CI, where
// a missing PostgreSQL fails the test. The system's own PostgreSQL service
// is not used and need not run.
//
// # The server
//
// Each server is a cluster of its own, made by initdb in a temporary
// directory (Server.Dir) and run as a child process (postgres -D), which
// listens on 127.0.0.1 on a free port (picked anew if another process took
// it first) and on a Unix socket in Dir. The superuser is "postgres" with
// a random password (Server.Password); connections over TCP must give it
// (SCRAM-SHA-256), as a production server would ask. Settings are
// PostgreSQL's defaults, fsync included, so that what tests and benchmarks
// measure is what a real server does.
//
// Run as root (as in CI), initdb and postgres run as the system user
// postgres that Debian's package creates (or nobody where it is missing),
// since PostgreSQL refuses to run as root, and Dir belongs to that user.
//
// The server is stopped by its PID when the test ends (Start) or when the
// tests of the package have run (Shared): SIGINT (PostgreSQL's fast
// shutdown), then SIGKILL for its whole process group after 10 s. On
// Linux the kernel also stops it if the test process dies. Dir is removed
// afterwards.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv is the environment variable that turns a missing PostgreSQL
// from a skipped test into a failed one: when it is set to 1 (or another
// true value that strconv.ParseBool accepts), Start and Shared call Fatal
// instead of Skip. CI sets it so that the tests on PostgreSQL cannot
// silently disappear.
const RequireEnv = "UNIMAIL_REQUIRE_POSTGRES"

// debianRoot holds one directory per installed PostgreSQL version, each
// with a bin directory (Debian's layout).
const debianRoot = "/usr/lib/postgresql"

const (
	readyTimeout = 30 * time.Second // from exec to the first query answered
	stopTimeout  = 10 * time.Second // from SIGINT to SIGKILL
	startTries   = 5                // attempts when a picked port was taken meanwhile
)

// Server is one running PostgreSQL, private to the test (or the package)
// that started it.
type Server struct {
	// Addr is the TCP address, "127.0.0.1:port".
	Addr string
	// User is the superuser's name ("postgres") and Password its password.
	User, Password string
	// Dir holds the data directory (Dir/data), the Unix socket and the log
	// (Dir/postgres.log). It is removed when the server stops.
	Dir string
	// Version is the major version of the server binaries, such as "15".
	Version string

	bin     string // the directory of initdb and postgres
	runAs   *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	seq     atomic.Int64
	// settings are extra -c options of postgres.
	settings []string
}

// errMissing is the error of a machine without PostgreSQL.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

// Start starts a private PostgreSQL for the test and returns once it
// answers queries; t.Cleanup stops it and removes its directory. When
// PostgreSQL is not installed, the test is skipped with a one-line reason,
// or fails when UNIMAIL_REQUIRE_POSTGRES=1. Any other problem fails the
// test with the server's log.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb)
}

// StartWith is Start with server settings ("name=value", such as
// "max_connections=400") given to postgres as -c options, over
// PostgreSQL's defaults.
func StartWith(tb testing.TB, settings ...string) *Server {
	tb.Helper()
	s, err := start(os.Getenv, debianRoot, settings...)
	if err != nil {
		fail(tb, os.Getenv, err)
		return nil
	}
	tb.Cleanup(s.stop)
	return s
}

var shared struct {
	mu      sync.Mutex
	inMain  bool
	started bool
	srv     *Server
	err     error
}

// Main runs the package's tests (m.Run) and then stops the server that
// Shared started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.stop()
	}
	return code
}

// Shared returns the package's one server, starting it at the first call;
// Main stops it after the last test. It needs Main in the package's
// TestMain. Like Start, it skips (or fails) the test when PostgreSQL is
// not installed, and fails it when the server could not start; the
// outcome of the first start holds for every later call.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		tb.Fatal("pgtest: Shared needs TestMain to call pgtest.Main, which stops the server")
		return nil
	}
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = start(os.Getenv, debianRoot)
	}
	if shared.err != nil {
		fail(tb, os.Getenv, shared.err)
		return nil
	}
	return shared.srv
}

// fail skips the test when PostgreSQL is missing and not required, and
// fails it otherwise.
func fail(tb testing.TB, getenv func(string) string, err error) {
	tb.Helper()
	var m errMissing
	if !errors.As(err, &m) {
		tb.Fatalf("pgtest: %v", err)
		return
	}
	if required(getenv(RequireEnv)) {
		tb.Fatalf("pgtest: %v (%s is set, so PostgreSQL is required)", err, RequireEnv)
		return
	}
	tb.Skipf("pgtest: %v; skipping (set %s=1 to fail instead)", err, RequireEnv)
}

// required reports whether the value of RequireEnv asks for PostgreSQL.
func required(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

// findBinaries returns the directory that holds initdb and postgres: the
// newest version under root (root/<version>/bin), or else a directory of
// pathEnv; version is "" when it is not known from the directory name.
func findBinaries(root, pathEnv string) (bin, version string, err error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	ents, _ := os.ReadDir(root)
	var versions []string
	for _, e := range ents {
		if versionKey(e.Name()) != nil && has(filepath.Join(root, e.Name(), "bin")) {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) > 0 {
		sort.Slice(versions, func(i, j int) bool {
			a, b := versionKey(versions[i]), versionKey(versions[j])
			for k := 0; k < len(a) && k < len(b); k++ {
				if a[k] != b[k] {
					return a[k] > b[k]
				}
			}
			return len(a) > len(b)
		})
		return filepath.Join(root, versions[0], "bin"), versions[0], nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d != "" && filepath.IsAbs(d) && has(d) {
			return d, "", nil
		}
	}
	return "", "", errMissing{fmt.Sprintf("no initdb and postgres in %s/<version>/bin or $PATH: PostgreSQL is not installed", root)}
}

// versionKey parses a version directory name such as "15" or "9.6".
func versionKey(name string) []int {
	var key []int
	for f := range strings.SplitSeq(name, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil
		}
		key = append(key, n)
	}
	return key
}

// start makes a cluster and starts its server.
func start(getenv func(string) string, root string, settings ...string) (*Server, error) {
	bin, version, err := findBinaries(root, getenv("PATH"))
	if err != nil {
		return nil, err
	}
	s := &Server{User: "postgres", bin: bin, Version: version, settings: settings}
	if err := s.prepare(); err != nil {
		if s.Dir != "" {
			os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	for try := 1; ; try++ {
		err := s.launch()
		if err == nil {
			return s, nil
		}
		if errors.Is(err, errPortTaken) && try < startTries {
			continue
		}
		log := s.Log()
		os.RemoveAll(s.Dir)
		return nil, fmt.Errorf("%v\n--- postgres log ---\n%s", err, log)
	}
}

// runAs returns who initdb and postgres run as: nil (this process's user)
// unless this process is root, which PostgreSQL refuses.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("running as root needs the system user postgres (or nobody) to run PostgreSQL as")
}

// prepare creates Dir and the cluster (initdb).
func (s *Server) prepare() error {
	var err error
	if s.runAs, err = runAs(); err != nil {
		return err
	}
	parent := os.TempDir()
	// The Unix socket's path (Dir/.s.PGSQL.<port>) must fit in 107 bytes,
	// and as root every directory on the way must be searchable by the
	// server's user.
	if len(parent) > 60 || (s.runAs != nil && !searchable(parent)) {
		parent = "/tmp"
	}
	if s.Dir, err = os.MkdirTemp(parent, "pgtest-"); err != nil {
		return err
	}
	if s.runAs != nil {
		if !searchable(parent) {
			return fmt.Errorf("%s is not searchable by others, so PostgreSQL's user cannot reach %s", parent, s.Dir)
		}
		if err := os.Chown(s.Dir, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
			return err
		}
	}
	var pw [16]byte
	rand.Read(pw[:])
	s.Password = hex.EncodeToString(pw[:])
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if s.runAs != nil {
		if err := os.Chown(pwfile, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(s.bin, "initdb"),
		"-D", filepath.Join(s.Dir, "data"),
		"--username", s.User, "--pwfile", pwfile,
		"--auth-local", "trust", "--auth-host", "scram-sha-256",
		"--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.runAs}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

// searchable reports whether every directory from dir up to / lets others
// through.
func searchable(dir string) bool {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

var errPortTaken = errors.New("the listening port was taken by another process")

// launch starts postgres on a free port and waits until it answers.
func (s *Server) launch() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(s.Dir, "postgres.log")
	logStart := int64(0)
	if fi, err := os.Stat(logPath); err == nil {
		logStart = fi.Size()
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(s.Dir, "data"),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+s.Dir,
		"-c", "logging_collector=off")
	for _, set := range s.settings {
		cmd.Args = append(cmd.Args, "-c", set)
	}
	cmd.Dir = s.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(s.runAs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %v", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		err = s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(logPath)
			if int64(len(b)) >= logStart && strings.Contains(string(b[logStart:]), "could not bind") {
				return errPortTaken
			}
			return fmt.Errorf("postgres exited during start-up (%v)", s.waitErr)
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("postgres did not answer within %v: %v", readyTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.Ping(cctx)
}

// DSN returns the URL of database on this server, with the superuser's
// name and password, as pgx and lib/pq take it.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", s.User, s.Password, s.Addr, database)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database for the test and returns its DSN.
// Its name is made of a sequence number and the test's name. It is not
// dropped: it goes with the server.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%s", s.seq.Add(1), unsafeName.ReplaceAllString(strings.ToLower(tb.Name()), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connecting to create a database: %v\n%s", err, s.Log())
		return ""
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" STRATEGY = FILE_COPY"); err != nil {
		tb.Fatalf("pgtest: CREATE DATABASE %s: %v\n%s", name, err, s.Log())
		return ""
	}
	return s.DSN(name)
}

// Log returns what the server has logged so far, for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	if err != nil {
		return fmt.Sprintf("(reading postgres.log: %v)", err)
	}
	return string(b)
}

// stop stops the server by its PID and removes Dir: SIGINT (fast
// shutdown), then SIGKILL for the process group after stopTimeout.
func (s *Server) stop() {
	defer os.RemoveAll(s.Dir)
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			killGroup(pid)
			<-s.exited
		}
	}
	// Its children leave with it; make sure none is left behind.
	deadline := time.Now().Add(stopTimeout)
	for groupAlive(pid) {
		if time.Now().After(deadline) {
			killGroup(pid)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}
