package poptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/connset"
	"github.com/unimail/unimail/internal/testcert"
)

// MaxLineLength is the longest command line, CRLF included, that the server
// accepts. A longer line is read to its end and answered with -ERR; the
// session goes on. A line that has not ended after 1 MiB closes the
// connection.
const MaxLineLength = 8192

// MaxSASLLineLength is the longest client response line, CRLF included, that
// the server accepts during an AUTH exchange (OAuth tokens can be long).
const MaxSASLLineLength = 64 << 10

// maxDiscard is how much of an over-long line the server reads and throws
// away before it gives up and closes the connection.
const maxDiscard = 1 << 20

// defaultLockWait is how long a login waits for a competing session of the
// same user to end when Config.LockWait is zero.
const defaultLockWait = time.Second

// Config configures a Server. A nil *Config is the same as a zero Config.
//
// The zero value gives a server with no users that announces USER, TOP,
// UIDL, PIPELINING, RESP-CODES, AUTH-RESP-CODE, SASL PLAIN and
// IMPLEMENTATION; STLS when the connection is not already TLS; no EXPIRE
// and no LOGIN-DELAY. Authentication is allowed on cleartext connections.
type Config struct {
	// NoUIDL removes UIDL from CAPA and makes the UIDL command answer -ERR.
	NoUIDL bool
	// NoTOP removes TOP from CAPA and makes the TOP command answer -ERR.
	NoTOP bool
	// NoPipelining removes PIPELINING from CAPA. The server still answers
	// pipelined commands correctly, in order.
	NoPipelining bool
	// NoUSER removes USER from CAPA and makes USER and PASS answer -ERR.
	NoUSER bool
	// NoCAPA makes CAPA answer -ERR, as an RFC 1939-only server does. Such a
	// server announces nothing, so it also sends no [CODE]s in its -ERR
	// replies (RFC 2449 section 8): a Fault's Err text is still sent as is.
	NoCAPA bool
	// NoSTLS stops the server offering STLS even though it has a
	// certificate.
	NoSTLS bool
	// NoSASL removes SASL from CAPA and makes AUTH answer -ERR.
	NoSASL bool

	// SASL lists the mechanisms announced in CAPA and accepted by AUTH, in
	// that order. Nil or empty means ["PLAIN"]. The server implements PLAIN
	// (RFC 4616), XOAUTH2 and OAUTHBEARER (RFC 7628); any other name is
	// announced, but AUTH with it answers -ERR, which lets a test check a
	// client's choice of mechanism.
	SASL []string

	// APOP puts an RFC 1939 <timestamp> in the greeting and accepts the
	// APOP command.
	APOP bool

	// Expire is announced as "EXPIRE <Expire>" in CAPA (RFC 2449 section
	// 6.7): "" announces nothing, otherwise it must be "0", "NEVER" or a
	// number of days. With "0" the server really deletes, at a committed
	// QUIT, every message that was RETRieved in the session (RSET does not
	// undo that; TOP does not count). Other values are only announced.
	Expire string

	// LoginDelay, if positive, is announced as "LOGIN-DELAY <n>". It is
	// informational: the server does not enforce it.
	LoginDelay int

	// Tokens maps an OAuth 2.0 bearer token to the user it authenticates,
	// for AUTH XOAUTH2 and AUTH OAUTHBEARER. The map is copied when the
	// server is created; see also Server.AddToken.
	Tokens map[string]string

	// Fault, if set, is called before each command is handled, and once
	// for the greeting (Seq 0, empty Name); see Fault. The Command's
	// secrets are redacted as in Server.Commands. It may be called from
	// several connections at once. See also Server.SetFault.
	Fault func(c Command) Fault

	// RequireTLSForAuth makes USER, PASS, APOP and AUTH on a cleartext
	// connection answer "-ERR [AUTH] ..." and hides USER and SASL from CAPA
	// until the connection is TLS (after STLS, or with implicit TLS), as
	// Dovecot does with disable_plaintext_auth.
	RequireTLSForAuth bool

	// LockWait is how long a login waits for another session that holds
	// the same maildrop to end before it answers "-ERR [IN-USE] ...". A
	// client that drops a connection and reconnects at once would otherwise
	// race the server noticing the drop. Zero means one second; a negative
	// value answers [IN-USE] at once.
	LockWait time.Duration
}

// A Server is an in-process POP3 server listening on 127.0.0.1. Create one
// with NewServer, NewTLSServer or NewUnstartedServer. All its methods are
// safe for concurrent use.
type Server struct {
	// Addr is the address the server listens on, "127.0.0.1:port", once it
	// has been started.
	Addr string

	cfg       Config
	mechs     []string // announced SASL mechanisms, upper case
	lockWait  time.Duration
	tlsConfig *tls.Config
	cert      *testcert.Cert

	mu        sync.Mutex
	fault     func(Command) Fault
	listener  net.Listener
	started   bool
	closed    bool
	implicit  bool // implicit TLS (StartTLS)
	passwords map[string]string
	tokens    map[string]string
	drops     map[string][]*message
	locks     map[string]chan struct{} // closed when the lock is released
	nextID    int64
	nextUID   int64
	connSeq   int
	conns     connset.Set[*session]
	log       []Command
	wg        sync.WaitGroup
}

// message is one stored message. It is never modified once created, so
// sessions can share it.
type message struct {
	id   int64  // identity across renumbering
	uid  string // UIDL
	data []byte
}

// NewServer starts and returns a cleartext server that offers STLS with a
// self-signed certificate (see ClientTLSConfig). It is closed by t.Cleanup.
// Outside a test, use NewUnstartedServer, Start and Close.
func NewServer(t testing.TB, cfg *Config) *Server {
	t.Helper()
	s := NewUnstartedServer(cfg)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer starts and returns a server that speaks implicit TLS
// (POP3S) with a self-signed certificate (see ClientTLSConfig). It is closed
// by t.Cleanup. Outside a test, use NewUnstartedServer, StartTLS and Close.
func NewTLSServer(t testing.TB, cfg *Config) *Server {
	t.Helper()
	s := NewUnstartedServer(cfg)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// NewUnstartedServer returns a server that does not listen yet, for use
// with or without a test (it needs no testing.TB): add users and messages,
// then call Start or StartTLS, or serve connections yourself with
// ServeConn. The caller must call Close. It panics on an invalid
// Config (a malformed Expire) or if no certificate can be generated.
func NewUnstartedServer(cfg *Config) *Server {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Expire != "" && c.Expire != "NEVER" {
		if n, err := strconv.Atoi(c.Expire); err != nil || n < 0 || strings.TrimLeft(c.Expire, "0123456789") != "" {
			panic(fmt.Sprintf("poptest: Config.Expire %q is not \"0\", \"NEVER\" or a number of days", c.Expire))
		}
	}
	s := &Server{
		cfg:       c,
		fault:     c.Fault,
		lockWait:  c.LockWait,
		passwords: make(map[string]string),
		tokens:    make(map[string]string),
		drops:     make(map[string][]*message),
		locks:     make(map[string]chan struct{}),
	}
	if s.lockWait == 0 {
		s.lockWait = defaultLockWait
	}
	for _, m := range c.SASL {
		s.mechs = append(s.mechs, strings.ToUpper(m))
	}
	if len(s.mechs) == 0 {
		s.mechs = []string{"PLAIN"}
	}
	for k, v := range c.Tokens {
		s.tokens[k] = v
	}
	cert, err := testcert.New("poptest")
	if err != nil {
		panic("poptest: generating certificate: " + err.Error())
	}
	s.cert, s.tlsConfig = cert, cert.ServerTLSConfig()
	return s
}

// Start starts serving cleartext POP3 (port 110 style, STLS offered unless
// NoSTLS) on a free port of 127.0.0.1 and sets Addr. It panics if the server
// was already started or closed.
func (s *Server) Start() { s.start(false) }

// StartTLS starts serving POP3 over implicit TLS (port 995 style) on a free
// port of 127.0.0.1 and sets Addr. It panics if the server was already
// started or closed.
func (s *Server) StartTLS() { s.start(true) }

func (s *Server) start(implicit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		panic("poptest: Server already started or closed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("poptest: listening on 127.0.0.1: " + err.Error())
	}
	s.started = true
	s.implicit = implicit
	s.listener = ln
	s.Addr = ln.Addr().String()
	s.wg.Add(1)
	go s.acceptLoop(ln)
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed; a loopback listener has no other lasting errors
		}
		sess := s.register(c, c)
		if sess == nil {
			continue
		}
		go func() {
			defer s.wg.Done()
			sess.serve(s.implicit)
		}()
	}
}

// ServeConn serves one POP3 session on c and returns when it ends; c is
// closed then. It works on a started or unstarted server, which makes it
// usable with net.Pipe and testing/synctest. If c is a *tls.Conn the
// session counts as TLS (no STLS offered); otherwise it is cleartext with
// STLS offered as for Start. On a closed server it closes c at once.
func (s *Server) ServeConn(c net.Conn) {
	raw := c
	tc, isTLS := c.(*tls.Conn)
	if isTLS {
		// Closing the TLS connection would send close_notify, which can
		// block on a peer that does not read; close the transport instead.
		raw = tc.NetConn()
	}
	sess := s.register(c, raw)
	if sess == nil {
		return
	}
	defer s.wg.Done()
	sess.serveConn(isTLS)
}

// register records a new connection c over the transport raw, or closes
// raw and returns nil if the server is closed. On success it has added one
// to s.wg.
func (s *Server) register(c, raw net.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		raw.Close()
		return nil
	}
	s.connSeq++
	sess := newSession(s, s.connSeq, c, raw)
	s.conns.Add(sess)
	s.wg.Add(1)
	return sess
}

func (s *Server) unregister(sess *session) { s.conns.Remove(sess) }

// Close stops the listener, closes every connection (no session commits
// without its QUIT) and waits until every goroutine of the server has
// returned. It may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	ln := s.listener
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.CloseClientConnections()
	s.wg.Wait()
}

// CloseClientConnections closes every open connection, as a network failure
// would: no session commits. The server keeps listening.
func (s *Server) CloseClientConnections() {
	for _, c := range s.conns.All() {
		c.close()
	}
}

// WaitIdle waits until the server serves no connection, or ctx is done.
// Use it after a client has gone away to be sure that the server has seen
// everything the client sent (for instance before asserting with Commands
// that no QUIT arrived).
func (s *Server) WaitIdle(ctx context.Context) error { return s.conns.WaitIdle(ctx) }

// SetFault replaces the fault hook (Config.Fault) for the commands that
// follow; nil removes it.
func (s *Server) SetFault(f func(Command) Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// AddUser creates user with password, or changes the password of an
// existing user. Users need no password to receive messages or to log in
// with an OAuth token (see AddToken).
func (s *Server) AddUser(user, password string) {
	s.mu.Lock()
	s.passwords[user] = password
	s.mu.Unlock()
}

// AddToken makes the OAuth 2.0 bearer token authenticate user with AUTH
// XOAUTH2 and AUTH OAUTHBEARER, like an entry of Config.Tokens.
func (s *Server) AddToken(token, user string) {
	s.mu.Lock()
	s.tokens[token] = user
	s.mu.Unlock()
}

// AddMessage appends a copy of raw to user's maildrop and returns its
// UIDL: unique within the server and never reused, made of characters
// 0x21-0x7E (RFC 1939 section 7). Sessions that are already logged in do
// not see it (RFC 1939: the message numbers are fixed at login).
//
// raw is sent back byte for byte, so it should use CRLF line ends like a
// real maildrop; the server does not rewrite line ends.
func (s *Server) AddMessage(user string, raw []byte) (uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.newMessage(raw)
	s.drops[user] = append(s.drops[user], m)
	return m.uid
}

// AddMessageUID appends a copy of raw to user's maildrop with the given
// UIDL, for tests that need a particular one (two servers that share UIDLs,
// unusual characters, or a broken server that repeats one). It panics
// unless uid has 1 to 70 characters in 0x21-0x7E, as RFC 1939 requires;
// uniqueness is the caller's business.
func (s *Server) AddMessageUID(user, uid string, raw []byte) {
	if !validUID(uid) {
		panic(fmt.Sprintf("poptest: invalid UIDL %q (want 1 to 70 characters 0x21-0x7E)", uid))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.newMessage(raw)
	m.uid = uid
	s.drops[user] = append(s.drops[user], m)
}

func validUID(uid string) bool {
	if len(uid) < 1 || len(uid) > 70 {
		return false
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < 0x21 || uid[i] > 0x7E {
			return false
		}
	}
	return true
}

// SetMessages replaces user's whole maildrop with copies of raws, each
// with a new UIDL.
func (s *Server) SetMessages(user string, raws [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := make([]*message, 0, len(raws))
	for _, raw := range raws {
		msgs = append(msgs, s.newMessage(raw))
	}
	s.drops[user] = msgs
}

// newMessage must be called with s.mu held.
func (s *Server) newMessage(raw []byte) *message {
	s.nextID++
	return &message{id: s.nextID, uid: s.newUID(), data: bytes.Clone(raw)}
}

// newUID must be called with s.mu held.
func (s *Server) newUID() string {
	s.nextUID++
	return "uid-" + strconv.FormatInt(s.nextUID, 10)
}

// Messages returns copies of the messages committed in user's maildrop
// now, in order: what a new session would see.
func (s *Server) Messages(user string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, m := range s.drops[user] {
		out = append(out, bytes.Clone(m.data))
	}
	return out
}

// UIDs returns the UIDLs of user's committed messages, in the order of
// Messages.
func (s *Server) UIDs(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.drops[user] {
		out = append(out, m.uid)
	}
	return out
}

// RenumberUIDs gives every message of user a fresh UIDL, as a server that
// rebuilt its index would. A session that is logged in keeps the UIDLs it
// saw at login; its deletions still apply to the same messages.
func (s *Server) RenumberUIDs(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := s.drops[user]
	for i, m := range msgs {
		msgs[i] = &message{id: m.id, uid: s.newUID(), data: m.data}
	}
}

// Commands returns a copy of the log of every command the server has read,
// on all connections, in the order it read them. The arguments of PASS,
// APOP (the digest) and AUTH (the initial response) are replaced by
// "<redacted>"; AUTH continuation lines are not commands and are not
// logged. Malformed lines (over-long, no CRLF, a CR or NUL inside) are not
// logged either.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Command, len(s.log))
	for i, c := range s.log {
		c.Args = append([]string(nil), c.Args...)
		out[i] = c
	}
	return out
}

func (s *Server) logCommand(c Command) Fault {
	s.mu.Lock()
	if c.Seq > 0 {
		c.Args = append([]string(nil), c.Args...)
		s.log = append(s.log, c)
	}
	f := s.fault
	s.mu.Unlock()
	if f == nil {
		return Fault{}
	}
	return f(c)
}

// Certificate returns the server's self-signed certificate, valid for
// 127.0.0.1, ::1 and localhost.
func (s *Server) Certificate() *x509.Certificate { return s.cert.Leaf }

// CertPEM returns the server's certificate in PEM form, for clients that
// read a CA file.
func (s *Server) CertPEM() []byte { return bytes.Clone(s.cert.PEM) }

// ClientTLSConfig returns a new tls.Config that trusts only the server's
// certificate, with ServerName "127.0.0.1" (the certificate is also valid
// for "localhost").
func (s *Server) ClientTLSConfig() *tls.Config { return s.cert.ClientTLSConfig() }

// lock takes user's maildrop lock, waiting up to s.lockWait for another
// session to release it, or until done is closed. It reports whether it got
// the lock.
func (s *Server) lock(user string, done <-chan struct{}) bool {
	var timer *time.Timer
	for {
		s.mu.Lock()
		held, ok := s.locks[user]
		if !ok {
			s.locks[user] = make(chan struct{})
			s.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		s.mu.Unlock()
		if s.lockWait < 0 {
			return false
		}
		if timer == nil {
			timer = time.NewTimer(s.lockWait)
		}
		select {
		case <-held:
		case <-timer.C:
			return false
		case <-done:
			timer.Stop()
			return false
		}
	}
}

// snapshot returns user's committed messages, which become the session's
// numbered messages.
func (s *Server) snapshot(user string) []*message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*message(nil), s.drops[user]...)
}

// unlock releases user's maildrop lock after deleting the messages whose
// ids are in del (those that are still there).
func (s *Server) unlock(user string, del map[int64]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(del) > 0 {
		var kept []*message
		for _, m := range s.drops[user] {
			if !del[m.id] {
				kept = append(kept, m)
			}
		}
		s.drops[user] = kept
	}
	if ch, ok := s.locks[user]; ok {
		close(ch)
		delete(s.locks, user)
	}
}

func (s *Server) password(user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.passwords[user]
	return p, ok
}

func (s *Server) tokenUser(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.tokens[token]
	return u, ok
}
