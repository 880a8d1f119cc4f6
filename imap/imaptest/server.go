package imaptest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/unimail/unimail/imap/imaptest/internal/memserver"
	"github.com/unimail/unimail/internal/connset"
	"github.com/unimail/unimail/internal/testcert"
)

// Config configures a Server. A nil *Config is the same as a zero Config.
//
// The zero value gives an IMAP4rev1 server with no users that announces
// AUTH=PLAIN before login and IDLE, UIDPLUS, MOVE, NAMESPACE, ESEARCH,
// SEARCHRES, LIST-EXTENDED, LIST-STATUS, STATUS=SIZE, CHILDREN,
// SPECIAL-USE, CREATE-SPECIAL-USE, UNSELECT, ENABLE, UTF8=ACCEPT, SASL-IR,
// LITERAL+ and LITERAL- after it; STARTTLS on a cleartext connection before
// login. Authentication is allowed on cleartext connections.
type Config struct {
	// Fault, if set, is called for each command line a client sends,
	// before the server sees it, and once for the greeting (Seq 0, empty
	// Name, before the greeting is sent); the Fault it returns says how
	// the server misbehaves. The Command's credentials are redacted as in
	// Server.Commands. It may be called from several connections at once.
	// See also Server.SetFault.
	Fault func(c Command) Fault

	// NoMove removes MOVE from the capabilities and answers MOVE and
	// UID MOVE with BAD, as a server without RFC 6851 does.
	NoMove bool
	// NoUIDPlus removes UIDPLUS from the capabilities, answers UID EXPUNGE
	// with BAD and leaves the APPENDUID and COPYUID response codes out, as
	// a server without RFC 4315 does.
	NoUIDPlus bool
	// NoIdle removes IDLE from the capabilities and answers IDLE with
	// BAD, as a server without RFC 2177 does.
	NoIdle bool
	// NoStartTLS stops a cleartext server (NewServer) offering STARTTLS;
	// the STARTTLS command is then answered with NO.
	NoStartTLS bool
	// RequireTLSForAuth makes a cleartext connection, until STARTTLS,
	// announce LOGINDISABLED instead of any AUTH= mechanism and answer
	// LOGIN and AUTHENTICATE with "NO [PRIVACYREQUIRED]", as a server that
	// forbids cleartext passwords (Dovecot's disable_plaintext_auth) does.
	RequireTLSForAuth bool
	// IMAP4rev2 also announces IMAP4rev2 (RFC 9051). It cannot be combined
	// with NoMove, NoUIDPlus or NoIdle, which IMAP4rev2 implies.
	IMAP4rev2 bool

	// Tokens maps an OAuth 2.0 bearer token to the user it authenticates.
	// When it is not empty the server also offers AUTHENTICATE XOAUTH2 and
	// AUTHENTICATE OAUTHBEARER (RFC 7628). The map is copied when the
	// server is created; see also Server.AddToken.
	Tokens map[string]string

	// Logger receives the server's error messages (a client that went
	// away, a failed TLS handshake, an internal error). When nil they go
	// to the test log (t.Logf) of NewServer and NewTLSServer, and nowhere
	// for NewUnstartedServer.
	Logger Logger
	// DebugWriter, if set, receives a transcript of every client
	// connection, one line per protocol line: "C3: " before what client 3
	// sent, "S3: " before what the server sent it. LOGIN arguments, SASL
	// exchanges and the contents of literals are left out, so the
	// transcript holds no credentials and no message bodies.
	DebugWriter io.Writer
}

// Logger is where a Server writes its error messages. *log.Logger is one.
type Logger interface {
	Printf(format string, v ...any)
}

// A Server is an in-process IMAP server listening on 127.0.0.1. Create one
// with NewServer, NewTLSServer or NewUnstartedServer. All its methods are
// safe for concurrent use.
type Server struct {
	// Addr is the address the server listens on, "127.0.0.1:port", once it
	// has been started.
	Addr string

	cfg       Config
	t         testing.TB // nil for NewUnstartedServer
	tlsConfig *tls.Config
	cert      *testcert.Cert

	imap  *imapserver.Server
	conns *connListener // the connections that imapserver serves

	mu        sync.Mutex
	fault     func(Command) Fault
	started   bool
	closed    bool
	implicit  bool // implicit TLS (StartTLS)
	listener  net.Listener
	users     map[string]*user
	tokens    map[string]string
	connSeq   int
	clients   connset.Set[*conn]
	log       []Command
	acceptWG  sync.WaitGroup
	serveWG   sync.WaitGroup // imapserver's Serve
	logClosed bool
	debugMu   sync.Mutex
}

// user is one account: its password and its mailboxes.
type user struct {
	name     string
	password string
	mem      *memserver.User
}

// NewServer starts and returns a cleartext server (port 143 style) that
// offers STARTTLS with a self-signed certificate (see ClientTLSConfig). It
// is closed by t.Cleanup, and its error messages go to t.Logf unless
// cfg.Logger is set. Misuse of its methods (an unknown user or folder)
// fails the test. Outside a test, use NewUnstartedServer, Start and Close.
func NewServer(t testing.TB, cfg *Config) *Server {
	t.Helper()
	s := newServer(t, cfg)
	s.start(false)
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer starts and returns a server that speaks implicit TLS (IMAPS,
// port 993 style) with a self-signed certificate (see ClientTLSConfig). It
// is closed by t.Cleanup, as for NewServer. Outside a test, use
// NewUnstartedServer, StartTLS and Close.
func NewTLSServer(t testing.TB, cfg *Config) *Server {
	t.Helper()
	s := newServer(t, cfg)
	s.start(true)
	t.Cleanup(s.Close)
	return s
}

// NewUnstartedServer returns a server that does not listen yet, for use
// outside tests (examples, demonstrations): add users and messages, then
// call Start or StartTLS, or serve connections yourself with ServeConn. The
// caller must call Close. Misuse of its methods panics. It panics on an
// invalid Config or if no certificate can be generated.
func NewUnstartedServer(cfg *Config) *Server {
	return newServer(nil, cfg)
}

func newServer(t testing.TB, cfg *Config) *Server {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	s := &Server{
		cfg:    c,
		t:      t,
		fault:  c.Fault,
		users:  make(map[string]*user),
		tokens: make(map[string]string),
		conns:  newConnListener(),
	}
	if c.IMAP4rev2 && (c.NoMove || c.NoUIDPlus || c.NoIdle) {
		s.failf("imaptest: Config.IMAP4rev2 cannot be combined with NoMove, NoUIDPlus or NoIdle")
	}
	for k, v := range c.Tokens {
		s.tokens[k] = v
	}
	cert, err := testcert.New("imaptest")
	if err != nil {
		s.failf("imaptest: generating certificate: %v", err)
	}
	s.cert, s.tlsConfig = cert, cert.ServerTLSConfig()
	caps := imap.CapSet{
		imap.CapIMAP4rev1:        {},
		imap.CapNamespace:        {},
		imap.CapUIDPlus:          {},
		imap.CapESearch:          {},
		imap.CapSearchRes:        {},
		imap.CapListExtended:     {},
		imap.CapListStatus:       {},
		imap.CapMove:             {},
		imap.CapStatusSize:       {},
		imap.CapChildren:         {},
		imap.CapSpecialUse:       {},
		imap.CapCreateSpecialUse: {},
		imap.CapLiteralPlus:      {},
	}
	if c.IMAP4rev2 {
		caps[imap.CapIMAP4rev2] = struct{}{}
	}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       caps,
		Logger:     logFunc(s.logf),
		// TLS is terminated by the connection wrapper (conn), beneath the
		// fault hooks, so imapserver never sees a *tls.Conn: it must allow
		// authentication on what looks like cleartext. The wrapper itself
		// enforces RequireTLSForAuth.
		InsecureAuth: true,
	})
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		s.imap.Serve(s.conns)
	}()
	return s
}

// Start starts serving cleartext IMAP (STARTTLS offered unless NoStartTLS)
// on a free port of 127.0.0.1 and sets Addr. It panics if the server was
// already started or closed.
func (s *Server) Start() { s.start(false) }

// StartTLS starts serving IMAP over implicit TLS on a free port of
// 127.0.0.1 and sets Addr. It panics if the server was already started or
// closed.
func (s *Server) StartTLS() { s.start(true) }

func (s *Server) start(implicit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		panic("imaptest: Server already started or closed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("imaptest: listening on 127.0.0.1: " + err.Error())
	}
	s.started = true
	s.implicit = implicit
	s.listener = ln
	s.Addr = ln.Addr().String()
	s.acceptWG.Add(1)
	go s.acceptLoop(ln)
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.acceptWG.Done()
	for {
		raw, err := ln.Accept()
		if err != nil {
			return // closed; a loopback listener has no other lasting errors
		}
		s.serve(raw, s.implicit)
	}
}

// ServeConn serves one IMAP session on c, with the same fault hooks and
// command log as a listening server, and returns at once; c is closed when
// the session ends. It works on a started or unstarted server, which makes
// it usable with net.Pipe. The session is cleartext with STARTTLS offered
// as for Start. On a closed server it closes c at once.
func (s *Server) ServeConn(c net.Conn) {
	s.serve(c, false)
}

func (s *Server) serve(raw net.Conn, implicit bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		raw.Close()
		return
	}
	s.connSeq++
	c := newConn(s, s.connSeq, raw, implicit)
	s.clients.Add(c)
	s.mu.Unlock()
	if !s.conns.push(c) {
		c.closeRaw()
		s.unregister(c)
	}
}

// unregister forgets a client connection whose session has ended.
func (s *Server) unregister(c *conn) { s.clients.Remove(c) }

// Close stops the listener, closes every connection and waits until the
// sessions have ended: no Fault hook runs after it returns. It may be
// called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ln := s.listener
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.acceptWG.Wait()
	// imapserver.Server.Close is not used: it races with a Serve that has
	// not started yet. Closing the listener ends Serve, and closing the
	// connections ends the sessions.
	s.conns.Close()
	s.serveWG.Wait()
	s.CloseClientConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		s.logf("imaptest: sessions did not end within 10s of Close")
	}
	s.mu.Lock()
	s.logClosed = true
	s.mu.Unlock()
}

// CloseClientConnections closes every open client connection, as a
// network failure would. The server keeps listening.
func (s *Server) CloseClientConnections() {
	for _, c := range s.clients.All() {
		c.closeRaw()
	}
}

// WaitIdle waits until the server serves no client connection, or ctx is
// done. Use it after a client has gone away to be sure that the server has
// seen everything the client sent (for instance before asserting with
// Commands that no plain EXPUNGE arrived).
func (s *Server) WaitIdle(ctx context.Context) error { return s.clients.WaitIdle(ctx) }

// SetFault replaces the fault hook (Config.Fault) for the commands that
// follow; nil removes it.
func (s *Server) SetFault(f func(Command) Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// faultFor calls the fault hook, if any, for cmd.
func (s *Server) faultFor(cmd Command) Fault {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	if f == nil {
		return Fault{}
	}
	return f(cmd)
}

// AddToken makes the OAuth 2.0 bearer token authenticate user with
// AUTHENTICATE XOAUTH2 and OAUTHBEARER, like an entry of Config.Tokens.
// Connections made after the first token is added offer the two
// mechanisms.
func (s *Server) AddToken(token, user string) {
	s.mu.Lock()
	s.tokens[token] = user
	s.mu.Unlock()
}

// Commands returns a copy of the log of the command lines that clients
// sent, in the order the server read them, faulted ones included. LOGIN
// and AUTHENTICATE arguments are redacted; SASL responses and IDLE's DONE
// are not commands and are not logged.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.log...)
}

func (s *Server) logCommand(cmd Command) {
	s.mu.Lock()
	s.log = append(s.log, cmd)
	s.mu.Unlock()
}

// logf reports a server error to Config.Logger or the test log.
func (s *Server) logf(format string, v ...any) {
	if s.cfg.Logger != nil {
		s.cfg.Logger.Printf(format, v...)
		return
	}
	if s.t == nil {
		return
	}
	// The test log must not be written once the test has ended, which
	// Close (run by t.Cleanup) marks.
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.logClosed {
		s.t.Logf(format, v...)
	}
}

// failf reports misuse: it fails the test, or panics without one.
func (s *Server) failf(format string, v ...any) {
	if s.t != nil {
		s.t.Helper()
		s.t.Fatalf(format, v...)
	}
	panic(fmt.Sprintf(format, v...))
}

type logFunc func(format string, v ...any)

func (f logFunc) Printf(format string, v ...any) { f(format, v...) }

// connListener is the net.Listener that imapserver serves: it hands over
// the connections that the Server accepted and wrapped.
type connListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to imapserver; it reports false if the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("imaptest: %w", net.ErrClosed)
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}
