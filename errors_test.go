package unimail_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// The tests here run every failure over both protocols, through Dial, and
// check that the two drivers say the same thing the same way: the exact
// text of the error, its kind, and whether it is temporary.

const (
	vocabUser     = "alice"
	vocabPassword = "vocab-Pa55word"
	vocabMessage  = "Subject: vocabulary\r\n\r\n" // followed by a long body
)

// step is where a fault strikes.
type step int

const (
	stepNone step = iota
	stepGreeting
	stepLogin
	stepList
	stepFetch
	stepCommit
)

func (s step) String() string {
	return [...]string{"none", "greeting", "login", "list", "fetch", "commit"}[s]
}

// fault is a protocol-neutral description of a server's misbehaviour at
// one step, turned into a poptest.Fault or an imaptest.Fault.
type fault struct {
	at     step
	stall  time.Duration // stall the step's command this long
	refuse string        // answer -ERR / NO with this text
	drop   int           // drop the connection after this many bytes of the answer
	// hit, when set, is called when the server reads the step's command
	// (before stalling), once.
	hit func()
}

// popCommands and imapMatch name the commands of each step.
var popCommands = map[step][]string{
	stepLogin:  {"AUTH", "PASS", "USER", "APOP"},
	stepList:   {"UIDL", "LIST"},
	stepFetch:  {"RETR"},
	stepCommit: {"QUIT"},
}

func imapMatch(at step, c imaptest.Command) bool {
	switch at {
	case stepLogin:
		return c.Name == "LOGIN" || c.Name == "AUTHENTICATE"
	case stepList:
		return c.Name == "UID FETCH" && strings.Contains(c.Line, "RFC822.SIZE")
	case stepFetch:
		return c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY")
	case stepCommit:
		return c.Name == "UID STORE"
	}
	return false
}

// server is one in-process server of either protocol with one user and
// one message.
type server struct {
	proto string // "pop3" or "imap"
	addr  string
	tls   *tls.Config
}

// url returns the URL of the server with the given scheme suffix ("s" for
// implicit TLS, "" for STARTTLS).
func (s *server) url(tlsSuffix string) string {
	u := s.proto + tlsSuffix + "://" + vocabUser + "@" + s.addr
	if s.proto == "imap" {
		u += "/INBOX"
	}
	return u
}

// startServer starts a server of proto with f as its fault; implicit says
// implicit TLS (else STARTTLS offered unless noStartTLS).
func startServer(t *testing.T, proto string, implicit, noStartTLS bool, f fault) *server {
	t.Helper()
	var once sync.Once
	hit := func() {
		if f.hit != nil {
			once.Do(f.hit)
		}
	}
	body := vocabMessage + strings.Repeat("0123456789abcdef\r\n", 4096)
	if proto == "pop3" {
		cfg := &poptest.Config{NoSTLS: noStartTLS, Fault: func(c poptest.Command) poptest.Fault {
			if (f.at == stepGreeting && c.Seq == 0) || (f.at != stepGreeting && c.Seq > 0 && contains(popCommands[f.at], c.Name)) {
				hit()
				return poptest.Fault{Stall: f.stall, Err: f.refuse, DropAfterBytes: f.drop}
			}
			return poptest.Fault{}
		}}
		var s *poptest.Server
		if implicit {
			s = poptest.NewTLSServer(t, cfg)
		} else {
			s = poptest.NewServer(t, cfg)
		}
		s.AddUser(vocabUser, vocabPassword)
		s.AddMessage(vocabUser, []byte(body))
		return &server{proto: proto, addr: s.Addr, tls: s.ClientTLSConfig()}
	}
	cfg := &imaptest.Config{NoStartTLS: noStartTLS, Logger: discardLogger{}, Fault: func(c imaptest.Command) imaptest.Fault {
		if (f.at == stepGreeting && c.Seq == 0) || (f.at != stepGreeting && c.Seq > 0 && imapMatch(f.at, c)) {
			hit()
			return imaptest.Fault{Stall: f.stall, No: f.refuse, DropAfterBytes: f.drop}
		}
		return imaptest.Fault{}
	}}
	var s *imaptest.Server
	if implicit {
		s = imaptest.NewTLSServer(t, cfg)
	} else {
		s = imaptest.NewServer(t, cfg)
	}
	s.AddUser(vocabUser, vocabPassword)
	s.Append(vocabUser, "INBOX", []byte(body))
	return &server{proto: proto, addr: s.Addr, tls: s.ClientTLSConfig()}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// session dials with opts, then runs the session up to at: list, fetch
// the message whole, mark it and commit. It returns the first error.
// stepCtx is called when the step at begins (the Dial when at is
// stepGreeting or stepLogin), for the context of that step; the others
// run with t.Context().
func session(stepCtx func() context.Context, t *testing.T, rawURL string, opts *unimail.Options, at step) error {
	t.Helper()
	dctx := t.Context()
	if at <= stepLogin {
		dctx = stepCtx()
	}
	mb, err := unimail.Dial(dctx, rawURL, opts)
	if err != nil {
		if mb != nil {
			t.Errorf("Dial failed (%v) but returned a non-nil Mailbox", err)
		}
		return err
	}
	defer mb.Abort()
	sctx := func(s step) context.Context {
		if s == at {
			return stepCtx()
		}
		return t.Context()
	}
	list, err := mb.List(sctx(stepList))
	if err != nil {
		return err
	}
	if len(list) != 1 {
		t.Fatalf("listed %d messages, want 1", len(list))
	}
	r, err := mb.Open(sctx(stepFetch), list[0].UID)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err != nil {
		return err
	}
	if err := mb.Delete(t.Context(), list[0].UID); err != nil {
		return err
	}
	return mb.Close(sctx(stepCommit))
}

// normalize replaces the server's address, which changes from run to run,
// by ADDR.
func normalize(err error, addr string) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), addr, "ADDR")
}

// expect is what one case must give on one protocol.
type expect struct {
	text      string
	kind      error
	temporary bool
}

// TestErrorVocabulary runs each failure over POP3 and IMAP and checks the
// exact text of the error, its kind and IsTemporary: the same failure
// reads the same way whatever the protocol.
func TestErrorVocabulary(t *testing.T) {
	// A port on which nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	cases := []struct {
		name     string
		implicit bool   // implicit TLS, else STARTTLS
		noTLS    bool   // the server does not offer STARTTLS
		untrust  bool   // the client does not trust the server's certificate
		password string // "" for the right one
		timeout  time.Duration
		deadline time.Duration // the caller's deadline for the step of fault.at
		fault    fault
		addr     string // instead of the server's
		want     map[string]expect
	}{
		{
			name: "connection refused", implicit: true, addr: refused,
			want: map[string]expect{
				"pop3": {"pop3 connect: connection failed: dial tcp ADDR: connect: connection refused", mailaccess.ErrConnection, true},
				"imap": {"imap connect: connection failed: dial tcp ADDR: connect: connection refused", mailaccess.ErrConnection, true},
			},
		},
		{
			name: "TLS handshake failure", implicit: true, untrust: true,
			want: map[string]expect{
				"pop3": {"pop3 TLS handshake: TLS required or failed: tls: failed to verify certificate: x509: certificate signed by unknown authority", mailaccess.ErrTLS, false},
				"imap": {"imap TLS handshake: TLS required or failed: tls: failed to verify certificate: x509: certificate signed by unknown authority", mailaccess.ErrTLS, false},
			},
		},
		{
			name: "STARTTLS not offered", noTLS: true,
			want: map[string]expect{
				"pop3": {"pop3 STARTTLS: TLS required or failed: the server does not offer STLS", mailaccess.ErrTLS, false},
				"imap": {`imap STARTTLS: TLS required or failed: server said "STARTTLS not supported": the server refused STARTTLS`, mailaccess.ErrTLS, false},
			},
		},
		{
			// A POP3 server that refuses service at connection time is
			// usually busy; an IMAP server's BYE is not taken as
			// temporary.
			name: "greeting refused", implicit: true,
			fault: fault{at: stepGreeting, refuse: "too busy"},
			want: map[string]expect{
				"pop3": {`pop3 greeting: temporarily unavailable: server said "too busy"`, mailaccess.ErrUnavailable, true},
				"imap": {`imap greeting: server refused the command: server said "too busy"`, mailaccess.ErrServer, false},
			},
		},
		{
			name: "wrong password", implicit: true, password: "wrong-" + vocabPassword,
			want: map[string]expect{
				"pop3": {`pop3 login: authentication failed: server said "[AUTH] authentication failed"`, mailaccess.ErrAuth, false},
				"imap": {`imap login: authentication failed: server said "[AUTHENTICATIONFAILED] Authentication failed"`, mailaccess.ErrAuth, false},
			},
		},
		{
			name: "server-temporary login refusal", implicit: true,
			fault: fault{at: stepLogin, refuse: "[SYS/TEMP] try later"},
			want: map[string]expect{
				"pop3": {`pop3 login: temporarily unavailable: server said "[SYS/TEMP] try later"`, mailaccess.ErrUnavailable, true},
			},
		},
		{
			name: "server-temporary login refusal", implicit: true,
			fault: fault{at: stepLogin, refuse: "[UNAVAILABLE] try later"},
			want: map[string]expect{
				"imap": {`imap login: temporarily unavailable: server said "[UNAVAILABLE] try later"`, mailaccess.ErrUnavailable, true},
			},
		},
		{
			name: "caller's deadline at login", implicit: true, deadline: 300 * time.Millisecond,
			fault: fault{at: stepLogin, stall: 10 * time.Second},
			want: map[string]expect{
				"pop3": {"pop3 login: connection failed: context deadline exceeded", mailaccess.ErrConnection, false},
				"imap": {"imap login: connection failed: context deadline exceeded", mailaccess.ErrConnection, false},
			},
		},
		{
			name: "caller's deadline at list", implicit: true, deadline: 50 * time.Millisecond,
			fault: fault{at: stepList, stall: 10 * time.Second},
			want: map[string]expect{
				"pop3": {"pop3 list: connection failed: context deadline exceeded", mailaccess.ErrConnection, false},
				"imap": {"imap list: connection failed: context deadline exceeded", mailaccess.ErrConnection, false},
			},
		},
		{
			name: "library timeout on a stalled server", implicit: true, timeout: 200 * time.Millisecond,
			fault: fault{at: stepList, stall: 10 * time.Second},
			want: map[string]expect{
				"pop3": {"pop3 list: connection failed: timed out after 200ms", mailaccess.ErrConnection, true},
				"imap": {"imap list: connection failed: timed out after 200ms", mailaccess.ErrConnection, true},
			},
		},
		{
			name: "library timeout at login", implicit: true, timeout: 200 * time.Millisecond,
			fault: fault{at: stepLogin, stall: 10 * time.Second},
			want: map[string]expect{
				"pop3": {"pop3 login: connection failed: timed out after 200ms", mailaccess.ErrConnection, true},
				"imap": {"imap login: connection failed: timed out after 200ms", mailaccess.ErrConnection, true},
			},
		},
		{
			name: "refusal of a fetch", implicit: true,
			fault: fault{at: stepFetch, refuse: "no such message"},
			want: map[string]expect{
				"pop3": {`pop3 fetch: message not found: server said "no such message"`, mailaccess.ErrNotFound, false},
				"imap": {`imap fetch: server refused the command: server said "no such message"`, mailaccess.ErrServer, false},
			},
		},
		{
			name: "temporary refusal of a fetch", implicit: true,
			fault: fault{at: stepFetch, refuse: "[SYS/TEMP] storage hiccup"},
			want: map[string]expect{
				"pop3": {`pop3 fetch: temporarily unavailable: server said "[SYS/TEMP] storage hiccup"`, mailaccess.ErrUnavailable, true},
			},
		},
		{
			name: "temporary refusal of a fetch", implicit: true,
			fault: fault{at: stepFetch, refuse: "[UNAVAILABLE] storage hiccup"},
			want: map[string]expect{
				"imap": {`imap fetch: temporarily unavailable: server said "[UNAVAILABLE] storage hiccup"`, mailaccess.ErrUnavailable, true},
			},
		},
		{
			name: "connection dropped in the middle of a fetch", implicit: true,
			fault: fault{at: stepFetch, drop: 4096},
			want: map[string]expect{
				"pop3": {"pop3 fetch: connection failed: the server closed the connection: unexpected EOF", mailaccess.ErrConnection, true},
				"imap": {"imap fetch: connection failed: the server closed the connection: unexpected EOF", mailaccess.ErrConnection, true},
			},
		},
		{
			name: "caller's deadline at commit", implicit: true, deadline: 50 * time.Millisecond,
			fault: fault{at: stepCommit, stall: 10 * time.Second},
			want: map[string]expect{
				// QUIT was sent: the deletion may have been committed.
				"pop3": {"pop3 commit: commit outcome unknown: connection failed: context deadline exceeded", mailaccess.ErrCommitUnknown, false},
				// UID STORE was sent, UID EXPUNGE was not: nothing was expunged.
				"imap": {"imap commit: commit failed: connection failed: context deadline exceeded", mailaccess.ErrCommitFailed, false},
			},
		},
	}
	for _, c := range cases {
		for _, proto := range []string{"pop3", "imap"} {
			want, ok := c.want[proto]
			if !ok {
				continue
			}
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, proto, c.implicit, c.noTLS, c.fault)
				if c.addr != "" {
					srv.addr = c.addr
				}
				opts := &unimail.Options{DialOptions: mailaccess.DialOptions{
					Auth:      mailaccess.Auth{Password: vocabPassword},
					TLSConfig: srv.tls,
					Timeout:   5 * time.Second,
				}}
				if c.password != "" {
					opts.Auth.Password = c.password
				}
				if c.untrust {
					opts.TLSConfig = nil
				}
				if c.timeout != 0 {
					opts.Timeout = c.timeout
				}
				suffix := ""
				if c.implicit {
					suffix = "s"
				}
				at := c.fault.at
				if at == stepNone || at == stepGreeting {
					at = stepLogin
				}
				// The deadline starts with the step, so that a slow machine does
				// not spend it on the steps before.
				stepCtx := func() context.Context {
					if c.deadline == 0 {
						return t.Context()
					}
					ctx, cancel := context.WithTimeout(t.Context(), c.deadline)
					t.Cleanup(cancel)
					return ctx
				}
				err := session(stepCtx, t, srv.url(suffix), opts, at)
				if got := normalize(err, srv.addr); got != want.text {
					t.Errorf("error text\n got: %s\nwant: %s", got, want.text)
				}
				if !errors.Is(err, want.kind) {
					t.Errorf("%v does not match %v", err, want.kind)
				}
				if _, ok := errors.AsType[*mailaccess.Error](err); !ok {
					t.Errorf("%v is not a *mailaccess.Error", err)
				}
				if got := mailaccess.IsTemporary(err); got != want.temporary {
					t.Errorf("IsTemporary = %v, want %v", got, want.temporary)
				}
				for _, secret := range []string{vocabPassword, c.password} {
					if secret != "" && strings.Contains(err.Error(), secret) {
						t.Errorf("the error shows the password: %v", err)
					}
				}
			})
		}
	}
}

// TestURLErrorVocabulary checks what ParseURL (and so Dial) says about each
// malformed URL, for both protocols: the part that is wrong, never its
// value.
func TestURLErrorVocabulary(t *testing.T) {
	const prefix = "parse URL: invalid argument: "
	const hint = ` (a "/", "?", "#" or "@" in the user or password must be percent-escaped)`
	for _, c := range []struct{ url, want string }{
		{"", "missing scheme: want pop3s://, pop3://, imaps:// or imap://"},
		{"alice@host", "missing scheme: want pop3s://, pop3://, imaps:// or imap://"},
		{"smtp://host", `unknown scheme "smtp": want pop3s, pop3, imaps or imap`},
		{"%s:host", "malformed URL: want %s://user@host"},
		{"%s://", "missing host"},
		{"%s://alice:topsecret@", "missing host"},
		{"%s://alice:topsecret@host:", "empty port"},
		{"%s://alice:topsecret@host:99999", "invalid port: want a number from 1 to 65535" + hint},
		{"%s://alice:top/secret@host", "invalid port: want a number from 1 to 65535" + hint},
		{"%s://alice:top#secret@host", "a mail URL takes no query or fragment" + hint},
		{"%s://host?x=1", "a mail URL takes no query or fragment" + hint},
		{"%s://al%zzice:topsecret@host", "invalid escape in the user: want %XX with two hexadecimal digits"},
		{"%s://alice:top%zzsecret@host", "invalid escape in the password: want %XX with two hexadecimal digits"},
		{"%s://alice:topsecret@ho%zzst", "invalid escape in the host: want %XX with two hexadecimal digits"},
		{"%s://alice:top secret@host", "invalid character in the password: escape it as %XX"},
		{"%s://alice:topsecret@bad host", "invalid host"},
		{"%s://al%0Aice:topsecret@host", "user contains CR, LF or NUL"},
		{"%s://alice:top%0Dsecret@host", "password contains CR, LF or NUL"},
		{"%s://alice:topsecret\r\n@host", "control character in the password"},
		{"%s://alice;X=1:topsecret@host", "unknown option after ';' in the user (curl's ;AUTH=MECH is the only one)"},
	} {
		for _, scheme := range []string{"pop3s", "imaps"} {
			raw := strings.ReplaceAll(c.url, "%s", scheme)
			want := prefix + strings.ReplaceAll(c.want, "%s", scheme)
			mb, err := unimail.Dial(t.Context(), raw, nil)
			if mb != nil {
				t.Errorf("Dial(%q) returned a non-nil Mailbox", raw)
			}
			if err == nil || err.Error() != want {
				t.Errorf("Dial(%q)\n got: %v\nwant: %s", raw, err, want)
				continue
			}
			if !errors.Is(err, mailaccess.ErrInvalidArgument) || mailaccess.IsTemporary(err) {
				t.Errorf("Dial(%q): %v is not a permanent ErrInvalidArgument", raw, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Dial(%q): the error shows the password: %v", raw, err)
			}
		}
	}
	// Folders: IMAP only.
	for _, c := range []struct{ url, want string }{
		{"imaps://host/IN%zzBOX", "invalid escape in the folder: want %XX with two hexadecimal digits"},
		{"imaps://host/IN%0D%0ABOX", "folder contains CR, LF or NUL"},
		{"pop3s://host/INBOX", "a POP3 URL has no folder"},
	} {
		_, err := unimail.ParseURL(c.url)
		if err == nil || err.Error() != prefix+c.want {
			t.Errorf("ParseURL(%q)\n got: %v\nwant: %s", c.url, err, prefix+c.want)
		}
	}
}
