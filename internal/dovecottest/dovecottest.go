package dovecottest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/testcert"
)

// RequireEnv is the environment variable that turns a missing Dovecot from a
// skipped test into a failed one: when it is set to 1 (or another true value
// that strconv.ParseBool accepts), Start calls Fatal instead of Skip. CI sets
// it so that the truth tests cannot silently disappear.
const RequireEnv = "UNIMAIL_REQUIRE_DOVECOT"

const (
	readyTimeout = 10 * time.Second // from exec to four greetings
	stopTimeout  = 5 * time.Second  // from SIGTERM to SIGKILL
	startTries   = 5                // attempts when a picked port was taken meanwhile
)

// fallbackDirs are searched after $PATH: Debian installs dovecot in
// /usr/sbin, which an ordinary user's PATH often lacks.
var fallbackDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"}

// Options configures Start. A nil *Options means the defaults.
type Options struct {
	// Users maps each user name to its password. Default: {"alice":
	// "alice-password"}. Names are limited to letters, digits and . _ - @ +
	// (not starting with a dot); passwords must not contain ':', CR, LF or
	// NUL. Every user gets an empty INBOX.
	Users map[string]string
	// ExtraConfig is appended to the generated dovecot.conf (Dovecot 2.3
	// syntax). Later settings override earlier ones.
	ExtraConfig string

	// onDisk keeps the files under t.TempDir() even when /dev/shm has
	// room, and ports replaces freePorts: both for the harness's own tests.
	onDisk bool
	ports  func(n int) ([]int, error)
}

// Server is one running Dovecot, private to the test that started it. Its
// four addresses serve the same users and the same Maildirs.
type Server struct {
	// IMAPAddr is IMAP on cleartext, offering STARTTLS ("127.0.0.1:port").
	IMAPAddr string
	// IMAPSAddr is IMAP with implicit TLS.
	IMAPSAddr string
	// POP3Addr is POP3 on cleartext, offering STLS.
	POP3Addr string
	// POP3SAddr is POP3 with implicit TLS.
	POP3SAddr string
	// Dir holds the configuration, the log, the certificate and the users'
	// homes (Dir/home/<user>/Maildir). It is on /dev/shm (tmpfs) when that
	// has at least 1 GiB free, else under t.TempDir(), and is removed when
	// the test ends.
	Dir string

	dovecot, doveadm string
	conf             string
	baseDir          string
	certPEM          []byte
	id               identity
	users            map[string]string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	// stamp numbers the Maildir files this harness writes. Dovecot gives
	// UIDs to new files in the order of the number at the start of their
	// names, so a counter keeps them in the order they were written.
	stamp atomic.Int64
	// sessionWait bounds how long Seed and ResetUIDValidity wait for open
	// sessions to end.
	sessionWait time.Duration
}

// identity is who Dovecot's unprivileged processes and mail access run as.
type identity struct {
	root     bool
	user     string // default_internal_user and default_login_user
	group    string // default_internal_group
	uid, gid int    // mail_uid, mail_gid, and the owner of the Maildirs
}

// Start starts a private Dovecot (2.3) for the test, in a directory of its
// own (see Server.Dir), and returns once all four listeners have sent their
// greeting (each over TLS where it applies, with the certificate verified).
// Four free ports are picked anew if one was taken before Dovecot bound it.
//
// t.Cleanup stops the server by its PID: SIGTERM, a wait until its session,
// login and auth processes have ended (at most 5 s), then SIGKILL for what
// is left (Dovecot's master otherwise idles a second for its logger), and a
// wait until none of its processes is left.
//
// When the dovecot or doveadm binary cannot be found (in $PATH, then
// /usr/sbin, /usr/local/sbin, /usr/bin, /usr/local/bin), the test is skipped
// with a one-line reason, unless UNIMAIL_REQUIRE_DOVECOT=1, in which case the
// test fails. Any other problem (a configuration Dovecot rejects, a listener
// that does not answer within 10 s) fails the test with the Dovecot log.
//
// Run as root, Dovecot's processes and mail access use nobody/nogroup and
// the directories on the way to Dir are made searchable for them; run as an
// ordinary user, everything runs as that user.
func Start(tb testing.TB, opts *Options) *Server {
	tb.Helper()
	return start(tb, opts, os.Getenv, fallbackDirs)
}

// start is Start with the environment and the fallback directories as
// parameters, so that the skip-or-fail rule can be tested.
func start(tb testing.TB, opts *Options, getenv func(string) string, fallbacks []string) *Server {
	tb.Helper()
	dovecot, doveadm, err := lookPath(getenv("PATH"), fallbacks)
	if err != nil {
		missing(tb, getenv, err)
		return nil
	}
	if opts == nil {
		opts = &Options{}
	}
	users := opts.Users
	if len(users) == 0 {
		users = map[string]string{"alice": "alice-password"}
	}
	if err := checkUsers(users); err != nil {
		tb.Fatalf("dovecottest: %v", err)
		return nil
	}
	id, err := currentIdentity()
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
		return nil
	}
	s := &Server{
		dovecot:     dovecot,
		doveadm:     doveadm,
		id:          id,
		users:       make(map[string]string, len(users)),
		sessionWait: 5 * time.Second,
	}
	for u, p := range users {
		s.users[u] = p
	}
	s.stamp.Store(time.Now().Unix() - 1<<20)
	if err := s.prepare(tb, opts.onDisk); err != nil {
		tb.Fatalf("dovecottest: %v", err)
		return nil
	}
	tb.Cleanup(s.stop)
	pick := opts.ports
	if pick == nil {
		pick = freePorts
	}
	for try := 1; ; try++ {
		err := s.launch(opts.ExtraConfig, pick)
		if err == nil {
			return s
		}
		if errors.Is(err, errPortTaken) && try < startTries {
			continue
		}
		tb.Fatalf("dovecottest: %v\n--- dovecot log ---\n%s", err, s.Log())
		return nil
	}
}

// missing skips the test, or fails it when RequireEnv says Dovecot is
// required.
func missing(tb testing.TB, getenv func(string) string, err error) {
	tb.Helper()
	if required(getenv(RequireEnv)) {
		tb.Fatalf("dovecottest: %v (%s is set, so Dovecot is required)", err, RequireEnv)
		return
	}
	tb.Skipf("dovecottest: %v; skipping (set %s=1 to fail instead)", err, RequireEnv)
}

// required reports whether the value of RequireEnv asks for Dovecot.
func required(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

// lookPath finds the dovecot and doveadm executables in the directories of
// pathEnv, then in fallbacks.
func lookPath(pathEnv string, fallbacks []string) (dovecot, doveadm string, err error) {
	dirs := append(filepath.SplitList(pathEnv), fallbacks...)
	find := func(name string) string {
		for _, d := range dirs {
			if d == "" || !filepath.IsAbs(d) {
				continue
			}
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	if dovecot = find("dovecot"); dovecot == "" {
		return "", "", errors.New("no dovecot executable in $PATH or the usual directories: Dovecot is not installed")
	}
	if doveadm = find("doveadm"); doveadm == "" {
		return "", "", errors.New("no doveadm executable in $PATH or the usual directories: Dovecot is incomplete")
	}
	return dovecot, doveadm, nil
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,63}$`)

func checkUsers(users map[string]string) error {
	for u, p := range users {
		if !userNameRE.MatchString(u) {
			return fmt.Errorf("user name %q: use letters, digits and . _ - @ + only", u)
		}
		if p == "" || strings.ContainsAny(p, ":\r\n\x00") {
			return fmt.Errorf("password of user %q: must be non-empty without ':', CR, LF or NUL", u)
		}
	}
	return nil
}

func currentIdentity() (identity, error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return identity{}, fmt.Errorf("running as root needs the user nobody: %v", err)
		}
		var g *user.Group
		for _, name := range []string{"nogroup", "nobody"} {
			if g, err = user.LookupGroup(name); err == nil {
				break
			}
		}
		if g == nil {
			return identity{}, errors.New("running as root needs the group nogroup (or nobody)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(g.Gid)
		return identity{root: true, user: "nobody", group: g.Name, uid: uid, gid: gid}, nil
	}
	u, err := user.Current()
	if err != nil {
		return identity{}, fmt.Errorf("cannot tell the current user: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return identity{}, fmt.Errorf("the current group %s has no name: %v", u.Gid, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return identity{user: u.Username, group: g.Name, uid: uid, gid: gid}, nil
}

// safePathRE is what a path may contain to go into dovecot.conf and the
// passwd-file unquoted: no spaces, no '%' or '$' (variables), no '#'.
var safePathRE = regexp.MustCompile(`^[A-Za-z0-9/._+-]+$`)

// prepare creates the directories, the certificate, the passwd-file and the
// Maildirs, and registers the removal of what t.TempDir does not remove.
func (s *Server) prepare(tb testing.TB, onDisk bool) error {
	// Dir is on tmpfs when there is room (fast), else under t.TempDir().
	// owned is the topmost directory that belongs to this test.
	var dir, owned string
	if d := ramDir(onDisk); d != "" {
		tb.Cleanup(func() { os.RemoveAll(d) })
		dir, owned = d, d
	} else {
		dir = tb.TempDir()
		owned = filepath.Dir(dir)
		if !safePathRE.MatchString(dir) || len(dir) > 200 {
			// The test's name made a path that Dovecot would read as
			// variables or comments: use a plain one instead.
			d, err := os.MkdirTemp("", "dovecottest-")
			if err != nil {
				return err
			}
			tb.Cleanup(func() { os.RemoveAll(d) })
			dir, owned = d, d
		}
	}
	s.Dir = dir
	s.conf = filepath.Join(dir, "dovecot.conf")
	if s.id.root {
		if err := makeSearchable(dir, owned); err != nil {
			return err
		}
	}

	// Dovecot's UNIX sockets live in base_dir and their paths must fit in
	// 108 bytes, so base_dir must be short.
	base := filepath.Join(dir, "run")
	if len(base) > 60 {
		d, err := os.MkdirTemp("", "dovecot-")
		if err != nil {
			return err
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		if len(d) > 60 || !safePathRE.MatchString(d) {
			if d, err = os.MkdirTemp("/tmp", "dovecot-"); err != nil {
				return err
			}
			tb.Cleanup(func() { os.RemoveAll(d) })
		}
		base = d
	} else if err := os.Mkdir(base, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	s.baseDir = base

	for _, d := range []string{"state", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}

	cert, err := testcert.New("dovecottest")
	if err != nil {
		return err
	}
	keyPEM, err := cert.KeyPEM()
	if err != nil {
		return err
	}
	certPEM := cert.PEM
	s.certPEM = certPEM
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return err
	}

	names := make([]string, 0, len(s.users))
	for u := range s.users {
		names = append(names, u)
	}
	sort.Strings(names)
	var pw bytes.Buffer
	for _, u := range names {
		home := filepath.Join(dir, "home", u)
		// user:password:uid:gid:gecos:home:shell; uid and gid come from
		// mail_uid and mail_gid.
		fmt.Fprintf(&pw, "%s:{PLAIN}%s::::%s::\n", u, s.users[u], home)
		if err := s.mkdir(home); err != nil {
			return err
		}
		if err := s.ensureFolder(filepath.Join(home, "Maildir"), false); err != nil {
			return err
		}
	}
	// The auth process reads the passwd-file as the unprivileged user.
	mode := os.FileMode(0o600)
	if s.id.root {
		mode = 0o644
	}
	return os.WriteFile(filepath.Join(dir, "passwd"), pw.Bytes(), mode)
}

// makeSearchable gives others the search (x) permission on dir and on its
// parents up to owned (directories that belong to the test), so that
// nobody can reach the Maildirs. Directories above owned must already be
// searchable.
func makeSearchable(dir, owned string) error {
	owned = filepath.Clean(owned)
	chmod := true
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if !chmod {
				return fmt.Errorf("%s is not searchable by others, so Dovecot's unprivileged processes cannot reach %s; use a TMPDIR that is", p, dir)
			}
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
		if p == owned {
			chmod = false
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

var errPortTaken = errors.New("a listening port was taken by another process")

// launch writes the configuration with four fresh ports, starts Dovecot and
// waits for its greetings.
func (s *Server) launch(extra string, pick func(int) ([]int, error)) error {
	ports, err := pick(4)
	if err != nil {
		return err
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	s.IMAPAddr, s.IMAPSAddr, s.POP3Addr, s.POP3SAddr = addr(ports[0]), addr(ports[1]), addr(ports[2]), addr(ports[3])
	if err := os.WriteFile(s.conf, []byte(s.config(ports, extra)), 0o644); err != nil {
		return err
	}
	// Only this attempt's lines tell why it failed.
	logFiles := []string{filepath.Join(s.Dir, "dovecot.log"), filepath.Join(s.Dir, "dovecot.stderr")}
	logStart := make([]int, len(logFiles))
	for i, f := range logFiles {
		b, _ := os.ReadFile(f)
		logStart[i] = len(b)
	}
	stderr, err := os.OpenFile(filepath.Join(s.Dir, "dovecot.stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	// Dovecot writes nothing to stdout; what it writes to stderr before
	// its log is set up goes to dovecot.stderr, shown by Log.
	cmd := exec.Command(s.dovecot, "-F", "-c", s.conf)
	cmd.Dir = s.Dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", s.dovecot, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		s.waitErr = err
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = s.waitReady(ctx)
	if err == nil {
		return nil
	}
	select {
	case <-exited:
		for i, f := range logFiles {
			if b, _ := os.ReadFile(f); len(b) >= logStart[i] && bytes.Contains(b[logStart[i]:], []byte("Address already in use")) {
				return errPortTaken
			}
		}
		return fmt.Errorf("dovecot exited during start-up (%v)", s.waitErr)
	default:
	}
	s.stop()
	return fmt.Errorf("dovecot did not become ready within %v: %v", readyTimeout, err)
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady connects to each listener and reads its greeting, through TLS
// with verification where the listener is implicit TLS.
func (s *Server) waitReady(ctx context.Context) error {
	type endpoint struct {
		addr, greeting string
		tls            bool
	}
	eps := []endpoint{
		{s.IMAPAddr, "* OK", false},
		{s.IMAPSAddr, "* OK", true},
		{s.POP3Addr, "+OK", false},
		{s.POP3SAddr, "+OK", true},
	}
	errc := make(chan error, len(eps))
	for _, ep := range eps {
		go func() {
			line, err := s.greeting(ctx, ep.addr, ep.tls)
			if err == nil && !strings.HasPrefix(line, ep.greeting) {
				err = fmt.Errorf("%s greeted with %q", ep.addr, line)
			}
			errc <- err
		}()
	}
	var first error
	for range eps {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// greeting dials addr until it accepts (Dovecot binds its listeners while
// starting up) and returns the first line it sends.
func (s *Server) greeting(ctx context.Context, addr string, useTLS bool) (string, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("%s: %v", addr, err)
			case <-time.After(5 * time.Millisecond):
				continue
			}
		}
		defer conn.Close()
		// Give up on the read when Dovecot exits or time is up.
		defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })()
		if useTLS {
			tc := tls.Client(conn, s.ClientTLSConfig())
			if err := tc.HandshakeContext(ctx); err != nil {
				return "", fmt.Errorf("%s: TLS handshake: %v", addr, err)
			}
			conn = tc
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("%s: reading the greeting: %v", addr, err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
}

// stop ends Dovecot: SIGTERM to the master, a bounded wait, then SIGKILL;
// then it waits for the master's children, which share its process group,
// so that nothing writes into Dir once the test's cleanup removes it.
//
// After SIGTERM, Dovecot's master ends its services at once but then waits
// a second for its logging process before it exits. Once nothing but those
// two is left (no session, no login, no auth process: nothing touches the
// Maildirs any more), stop does not wait for that second and sends SIGKILL.
func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	p := s.cmd.Process
	select {
	case <-s.exited:
	default:
		_ = p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(stopTimeout)
	wait:
		for {
			select {
			case <-s.exited:
				break wait
			default:
			}
			if onlyLoggerLeft(p.Pid) || time.Now().After(deadline) {
				killGroup(p.Pid)
				_ = p.Kill()
				<-s.exited
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(stopTimeout)
	for groupAlive(p.Pid) {
		if time.Now().After(deadline) {
			killGroup(p.Pid)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// PID returns the PID of Dovecot's master process, whose children are
// its login, auth and session processes (0 when it is not running).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// CAPEM returns the PEM of the self-signed certificate that the server
// presents. It is its own CA and is valid for 127.0.0.1, ::1 and localhost.
func (s *Server) CAPEM() []byte {
	return bytes.Clone(s.certPEM)
}

// ClientTLSConfig returns a new TLS client configuration that trusts only
// the server's certificate, with ServerName "127.0.0.1" and verification on.
// Callers may modify it.
func (s *Server) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.certPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Log returns what Dovecot has logged so far (and anything it wrote to
// stderr), for failure messages. The log never contains passwords.
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b = fmt.Appendf(b, "(reading dovecot.log: %v)\n", err)
	}
	if e, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.stderr")); len(e) > 0 {
		b = append(b, "--- stderr ---\n"...)
		b = append(b, e...)
	}
	return string(b)
}

// config returns dovecot.conf. Nothing else is read: no !include, no system
// configuration, and no listener except the four on 127.0.0.1.
func (s *Server) config(ports []int, extra string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# dovecot.conf for one test (Dovecot 2.3 syntax).")
	p("base_dir = %s", s.baseDir)
	p("state_dir = %s", filepath.Join(s.Dir, "state"))
	p("log_path = %s", filepath.Join(s.Dir, "dovecot.log"))
	p("auth_verbose = yes")
	p("verbose_proctitle = yes")
	p("protocols = imap pop3")
	p("listen = 127.0.0.1")
	p("shutdown_clients = yes")
	p("")
	p("ssl = yes")
	p("ssl_cert = <%s", filepath.Join(s.Dir, "cert.pem"))
	p("ssl_key = <%s", filepath.Join(s.Dir, "key.pem"))
	p("")
	p("# Cleartext authentication is allowed so that tests can exercise it;")
	p("# STARTTLS and STLS are still offered.")
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("")
	p("default_internal_user = %s", s.id.user)
	p("default_internal_group = %s", s.id.group)
	p("default_login_user = %s", s.id.user)
	p("mail_uid = %d", s.id.uid)
	p("mail_gid = %d", s.id.gid)
	p("first_valid_uid = 1")
	p("")
	p("mail_location = maildir:~/Maildir")
	p("mailbox_list_index = no")
	p("mail_fsync = never")
	p("mailbox_idle_check_interval = 1 secs")
	p("pop3_uidl_format = %%08Xu%%08Xv")
	p("mail_max_userip_connections = 1000")
	p("")
	p("# The first passdb only adds nodelay (its result is 'next'); when the")
	p("# passwd-file then rejects a password, the failure is answered at once")
	p("# and adds no per-IP penalty that would slow down the next test.")
	p("passdb {")
	p("  driver = static")
	p("  args = nopassword=y noauthenticate=y nodelay=y")
	p("}")
	p("passdb {")
	p("  driver = passwd-file")
	p("  args = %s", filepath.Join(s.Dir, "passwd"))
	p("}")
	p("userdb {")
	p("  driver = passwd-file")
	p("  args = %s", filepath.Join(s.Dir, "passwd"))
	p("}")
	p("")
	listener := func(name string, port int, ssl bool) {
		p("  inet_listener %s {", name)
		p("    address = 127.0.0.1")
		p("    port = %d", port)
		if ssl {
			p("    ssl = yes")
		}
		p("  }")
	}
	p("service imap-login {")
	p("  chroot =")
	listener("imap", ports[0], false)
	listener("imaps", ports[1], true)
	p("}")
	p("service pop3-login {")
	p("  chroot =")
	listener("pop3", ports[2], false)
	listener("pop3s", ports[3], true)
	p("}")
	p("service anvil {")
	p("  chroot =")
	p("}")
	if extra != "" {
		p("")
		p("# Options.ExtraConfig")
		p("%s", extra)
	}
	return b.String()
}
