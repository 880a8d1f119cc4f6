package pop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

const (
	user     = "alice"
	password = "s3cret-Pa55word"
)

// setup starts a cleartext server with STLS and one user.
func setup(t *testing.T, cfg *poptest.Config) *poptest.Server {
	t.Helper()
	s := poptest.NewServer(t, cfg)
	s.AddUser(user, password)
	return s
}

// opts returns Options that reach s with STLS and the given mechanism.
func opts(s *poptest.Server, mech string) *pop.Options {
	return &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: password, Mechanism: mech},
			Security:  mailaccess.SecurityStartTLS,
			TLSConfig: s.ClientTLSConfig(),
			Timeout:   5 * time.Second,
		},
	}
}

func dial(t *testing.T, s *poptest.Server, o *pop.Options) *pop.Mailbox {
	t.Helper()
	mb, err := pop.Dial(t.Context(), s.Addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { mb.Abort() })
	return mb
}

// wantKind fails unless err matches kind.
func wantKind(t *testing.T, err error, kind error) *mailaccess.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want kind %v", err, kind)
	}
	var e *mailaccess.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is not a *mailaccess.Error", err)
	}
	return e
}

// commands returns the server's log as strings, after the server has seen
// everything (every connection has ended).
func commands(t *testing.T, s *poptest.Server) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
	return commandsNow(s)
}

// commandsNow returns the server's log as strings, while a session is open:
// every command that got its answer is in it.
func commandsNow(s *poptest.Server) []string {
	var out []string
	for _, c := range s.Commands() {
		out = append(out, c.String())
	}
	return out
}

func names(cmds []string) []string {
	var out []string
	for _, c := range cmds {
		n, _, _ := strings.Cut(c, " ")
		out = append(out, n)
	}
	return out
}

func readAll(t *testing.T, mb *pop.Mailbox, uid mailaccess.UID) []byte {
	t.Helper()
	r, err := mb.Open(t.Context(), uid)
	if err != nil {
		t.Fatalf("Open(%s): %v", uid, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", uid, err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("closing %s: %v", uid, err)
	}
	return b
}

func TestImplicitTLSVerified(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	raw := []byte("Subject: tls\r\n\r\nover TLS\r\n")
	uid := s.AddMessage(user, raw)
	o := opts(s, "")
	o.Security = mailaccess.SecurityTLS
	mb := dial(t, s, o)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].UID != mailaccess.UID(uid) || list[0].Size != int64(len(raw)) || !list[0].Date.IsZero() {
		t.Fatalf("List = %+v", list)
	}
	if got := readAll(t, mb, list[0].UID); !bytes.Equal(got, raw) {
		t.Fatalf("got %q, want %q", got, raw)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(commands(t, s)), "STLS") {
		t.Error("STLS sent over implicit TLS")
	}
}

func TestImplicitTLSUntrustedCertificate(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	o := opts(s, "")
	o.Security = mailaccess.SecurityTLS
	o.TLSConfig = nil // system roots: the self-signed certificate is not trusted
	_, err := pop.Dial(t.Context(), s.Addr, o)
	wantKind(t, err, mailaccess.ErrTLS)
	if cmds := commands(t, s); len(cmds) != 0 {
		t.Errorf("commands sent despite the failed verification: %v", cmds)
	}
}

func TestImplicitTLSAgainstCleartextServer(t *testing.T) {
	s := setup(t, nil)
	o := opts(s, "")
	o.Security = mailaccess.SecurityTLS
	_, err := pop.Dial(t.Context(), s.Addr, o)
	wantKind(t, err, mailaccess.ErrTLS)
}

func TestImplicitTLSWrongServerName(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	o := opts(s, "")
	o.Security = mailaccess.SecurityTLS
	o.TLSConfig.ServerName = "pop.example.com"
	_, err := pop.Dial(t.Context(), s.Addr, o)
	wantKind(t, err, mailaccess.ErrTLS)
}

func TestSTLS(t *testing.T) {
	s := setup(t, &poptest.Config{RequireTLSForAuth: true})
	s.AddMessage(user, []byte("Subject: a\r\n\r\nA\r\n"))
	mb := dial(t, s, opts(s, ""))
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := names(commands(t, s))
	want := []string{"CAPA", "STLS", "CAPA", "AUTH", "CAPA", "UIDL", "LIST", "QUIT"}
	if !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
	// After STLS, the capabilities come from the TLS session: no STLS.
	if slices.Contains(mb.Capabilities(), "STLS") {
		t.Errorf("capabilities still hold STLS: %v", mb.Capabilities())
	}
}

func TestSTLSNotOffered(t *testing.T) {
	s := setup(t, &poptest.Config{NoSTLS: true})
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
	wantKind(t, err, mailaccess.ErrTLS)
	if got := names(commands(t, s)); !slices.Equal(got, []string{"CAPA"}) {
		t.Fatalf("commands %v, want only CAPA", got)
	}
}

func TestSTLSNoCAPA(t *testing.T) {
	s := setup(t, &poptest.Config{NoCAPA: true})
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
	wantKind(t, err, mailaccess.ErrTLS)
}

func TestSTLSRefused(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "STLS" {
			return poptest.Fault{Err: "TLS unavailable"}
		}
		return poptest.Fault{}
	}})
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
	e := wantKind(t, err, mailaccess.ErrTLS)
	if e.Text != "TLS unavailable" {
		t.Errorf("text %q", e.Text)
	}
	if slices.Contains(names(commands(t, s)), "USER") {
		t.Fatal("credentials sent after STLS was refused")
	}
}

func TestSTLSResponseInjection(t *testing.T) {
	// The server (or a man in the middle) sends a second response right
	// after +OK to STLS, before the handshake: it must not be read as if it
	// had come over TLS.
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "STLS" {
			return poptest.Fault{Reply: "+OK begin TLS\r\n+OK injected CAPA\r\nSASL PLAIN\r\n.\r\n"}
		}
		return poptest.Fault{}
	}})
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
	wantKind(t, err, mailaccess.ErrTLS)
	if !strings.Contains(err.Error(), "injection") {
		t.Errorf("error does not say why: %v", err)
	}
	for _, c := range names(commands(t, s)) {
		if c == "USER" || c == "PASS" || c == "AUTH" {
			t.Fatalf("credentials sent: %v", c)
		}
	}
}

func TestInsecureCleartext(t *testing.T) {
	s := setup(t, nil)
	o := opts(s, "")
	o.Security = mailaccess.SecurityInsecureCleartext
	o.TLSConfig = nil
	mb := dial(t, s, o)
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(commands(t, s)), "STLS") {
		t.Fatal("STLS sent in cleartext mode")
	}
}

func TestMechanisms(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  poptest.Config
		mech string
		want []string // login commands, in order
	}{
		{"auto picks PLAIN", poptest.Config{}, "", []string{"AUTH PLAIN <redacted>"}},
		{"auto falls back to USER/PASS", poptest.Config{NoSASL: true}, "", []string{"USER alice", "PASS <redacted>"}},
		{"LOGIN", poptest.Config{}, "LOGIN", []string{"USER alice", "PASS <redacted>"}},
		{"PLAIN", poptest.Config{}, "plain", []string{"AUTH PLAIN <redacted>"}},
		{"APOP", poptest.Config{APOP: true}, "APOP", []string{"APOP alice <redacted>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &tc.cfg)
			s.AddMessage(user, []byte("x\r\n"))
			mb := dial(t, s, opts(s, tc.mech))
			if _, err := mb.List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := mb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			var login []string
			for _, c := range commands(t, s) {
				switch n, _, _ := strings.Cut(c, " "); n {
				case "USER", "PASS", "APOP", "AUTH":
					login = append(login, c)
				}
			}
			if !slices.Equal(login, tc.want) {
				t.Fatalf("login %q, want %q", login, tc.want)
			}
		})
	}
}

func TestAPOPWithoutTimestamp(t *testing.T) {
	s := setup(t, nil)
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, "APOP"))
	wantKind(t, err, mailaccess.ErrUnsupported)
}

func TestOAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		sasl []string
		mech string
		want string
	}{
		{"auto picks OAUTHBEARER", []string{"PLAIN", "OAUTHBEARER", "XOAUTH2"}, "", "OAUTHBEARER"},
		{"auto falls back to XOAUTH2", []string{"PLAIN", "XOAUTH2"}, "", "XOAUTH2"},
		{"XOAUTH2", []string{"XOAUTH2", "OAUTHBEARER"}, "XOAUTH2", "XOAUTH2"},
		{"OAUTHBEARER", []string{"XOAUTH2", "OAUTHBEARER"}, "OAUTHBEARER", "OAUTHBEARER"},
		{"short token", []string{"XOAUTH2"}, "XOAUTH2", "XOAUTH2 <redacted>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A long token makes the AUTH line exceed 255 octets, so the
			// initial response must wait for the server's "+ "; a short
			// one goes into the AUTH line.
			token := "ya29." + strings.Repeat("t", 300)
			if strings.Contains(tc.want, " ") {
				token = "ya29.short"
			}
			s := setup(t, &poptest.Config{SASL: tc.sasl, Tokens: map[string]string{token: user}})
			calls := 0
			o := opts(s, tc.mech)
			o.Auth.Password = ""
			o.Auth.Token = func(context.Context) (string, error) { calls++; return token, nil }
			mb := dial(t, s, o)
			mb.Abort()
			if calls != 1 {
				t.Errorf("token source called %d times", calls)
			}
			var auth []string
			for _, c := range commands(t, s) {
				if strings.HasPrefix(c, "AUTH") {
					auth = append(auth, c)
				}
			}
			if want := []string{"AUTH " + tc.want}; !slices.Equal(auth, want) {
				t.Fatalf("AUTH commands %q, want %q (initial response after the continuation)", auth, want)
			}
		})
	}
}

func TestOAuthRefused(t *testing.T) {
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			s := setup(t, &poptest.Config{SASL: []string{mech}, Tokens: map[string]string{"good": user}})
			o := opts(s, mech)
			o.Auth.Token = func(context.Context) (string, error) { return "bad-token-value", nil }
			_, err := pop.Dial(t.Context(), s.Addr, o)
			wantKind(t, err, mailaccess.ErrAuth)
			if strings.Contains(err.Error(), "bad-token-value") {
				t.Fatalf("token in error: %v", err)
			}
		})
	}
}

func TestTokenSourceFails(t *testing.T) {
	dialed := false
	o := &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth: mailaccess.Auth{Username: user, Mechanism: "XOAUTH2", Token: func(context.Context) (string, error) {
				return "", errors.New("refresh failed")
			}},
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				dialed = true
				return nil, errors.New("no")
			},
		},
	}
	_, err := pop.Dial(t.Context(), "127.0.0.1:1", o)
	if e := wantKind(t, err, mailaccess.ErrAuth); e.Temporary() || mailaccess.IsTemporary(err) {
		t.Fatalf("a plain token source failure is temporary: %v", err)
	}
	if dialed {
		t.Fatal("connected although no token could be had")
	}

	// A source that fails for a passing reason keeps the error temporary,
	// so that Fetcher.Run retries; an empty token is a permanent ErrAuth.
	o.Auth.Token = func(context.Context) (string, error) {
		return "", &mailaccess.Error{Kind: mailaccess.ErrConnection, Err: errors.New("token endpoint unreachable")}
	}
	_, err = pop.Dial(t.Context(), "127.0.0.1:1", o)
	if e := wantKind(t, err, mailaccess.ErrConnection); !e.Temporary() || !mailaccess.IsTemporary(err) {
		t.Fatalf("a temporary token source failure became permanent: %v", err)
	}
	if want := "pop3 login: connection failed: getting the OAuth2 token: token endpoint unreachable"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	o.Auth.Token = func(context.Context) (string, error) {
		return "", &mailaccess.Error{Kind: mailaccess.ErrUnavailable, Err: errors.New("token endpoint busy")}
	}
	_, err = pop.Dial(t.Context(), "127.0.0.1:1", o)
	if e := wantKind(t, err, mailaccess.ErrUnavailable); !e.Temporary() {
		t.Fatalf("a temporary token source failure became permanent: %v", err)
	}
	o.Auth.Token = func(context.Context) (string, error) { return "", nil }
	_, err = pop.Dial(t.Context(), "127.0.0.1:1", o)
	if e := wantKind(t, err, mailaccess.ErrAuth); e.Temporary() {
		t.Fatalf("empty token: %v, want a permanent ErrAuth", err)
	}
	if dialed {
		t.Fatal("connected although no token could be had")
	}
}

func TestWrongPassword(t *testing.T) {
	for _, mech := range []string{"LOGIN", "PLAIN", "APOP"} {
		t.Run(mech, func(t *testing.T) {
			s := setup(t, &poptest.Config{APOP: true})
			o := opts(s, mech)
			o.Auth.Password = "wrong-Pa55word-XYZ"
			_, err := pop.Dial(t.Context(), s.Addr, o)
			e := wantKind(t, err, mailaccess.ErrAuth)
			if e.Temporary() {
				t.Error("a refused password is temporary")
			}
			for _, secret := range []string{"wrong-Pa55word-XYZ", password} {
				if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%#v", err), secret) {
					t.Fatalf("password in error: %v", err)
				}
			}
		})
	}
}

func TestServerEchoingPasswordIsRedacted(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "PASS" {
			return poptest.Fault{Err: "[AUTH] bad password " + password}
		}
		return poptest.Fault{}
	}})
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, "LOGIN"))
	wantKind(t, err, mailaccess.ErrAuth)
	if strings.Contains(err.Error(), password) {
		t.Fatalf("password in error: %v", err)
	}
}

func TestLoginResponseCodes(t *testing.T) {
	for _, tc := range []struct {
		err       string
		kind      error
		temporary bool
	}{
		{"[IN-USE] maildrop locked", mailaccess.ErrInUse, true},
		{"[LOGIN-DELAY] wait a minute", mailaccess.ErrUnavailable, true},
		{"[SYS/TEMP] backend down", mailaccess.ErrUnavailable, true},
		{"[SYS/PERM] account disabled", mailaccess.ErrAuth, false},
		{"[AUTH] invalid credentials", mailaccess.ErrAuth, false},
		{"no", mailaccess.ErrAuth, false},
	} {
		t.Run(tc.err, func(t *testing.T) {
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == "AUTH" {
					return poptest.Fault{Err: tc.err}
				}
				return poptest.Fault{}
			}})
			_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
			e := wantKind(t, err, tc.kind)
			if e.Temporary() != tc.temporary || mailaccess.IsTemporary(err) != tc.temporary {
				t.Errorf("temporary = %v, want %v", e.Temporary(), tc.temporary)
			}
			if e.Text == "" {
				t.Error("server text lost")
			}
		})
	}
}

func TestInUse(t *testing.T) {
	s := setup(t, &poptest.Config{LockWait: -1})
	first := dial(t, s, opts(s, ""))
	_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
	e := wantKind(t, err, mailaccess.ErrInUse)
	if !e.Temporary() {
		t.Error("IN-USE is not temporary")
	}
	first.Abort()
}

func TestCRLFRefusedBeforeAnythingIsSent(t *testing.T) {
	for _, a := range []mailaccess.Auth{
		{Username: "bob\r\nDELE 1", Password: "x"},
		{Username: "bob", Password: "x\nDELE 1"},
		{Username: "bob", Password: "x\x00"},
		{Username: "bob", Password: "x", Mechanism: "PLAIN\r\nDELE 1"},
		{Username: "", Password: "x"},
	} {
		dialed := false
		o := &pop.Options{
			DialOptions: mailaccess.DialOptions{
				Auth: a,
				DialContext: func(context.Context, string, string) (net.Conn, error) {
					dialed = true
					return nil, errors.New("must not dial")
				},
			},
		}
		_, err := pop.Dial(t.Context(), "127.0.0.1:995", o)
		wantKind(t, err, mailaccess.ErrInvalidArgument)
		if dialed {
			t.Fatalf("%v: dialed before refusing", a)
		}
		if a.Password != "" && strings.Contains(err.Error(), a.Password) {
			t.Fatalf("password in error: %v", err)
		}
	}
}

func TestCRLFInUIDRefused(t *testing.T) {
	s := setup(t, nil)
	s.AddMessage(user, []byte("x\r\n"))
	mb := dial(t, s, opts(s, ""))
	before := len(s.Commands())
	_, err := mb.Open(t.Context(), "uid-1\r\nDELE 1")
	wantKind(t, err, mailaccess.ErrInvalidArgument)
	err = mb.Delete(t.Context(), "uid-1", "x\x00")
	wantKind(t, err, mailaccess.ErrInvalidArgument)
	if after := len(s.Commands()); after != before {
		t.Fatalf("commands sent: %v", s.Commands()[before:])
	}
	// The session is unharmed.
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// messages that test byte-exactness: dot-stuffing, a lone dot, binary
// bytes, long lines, a message without a final line end is not among them
// (see TestMessageWithoutFinalCRLF).
var tricky = [][]byte{
	[]byte("Subject: dots\r\n\r\n.\r\n..\r\n...leading dots\r\n. space\r\nend.\r\n"),
	[]byte("Subject: binary\r\n\r\n\x00\x01\x02\xff\xfe\r\n\x1b[31mred\r\n\xc3\xa9t\xc3\xa9\r\n"),
	[]byte("Subject: long line\r\n\r\n" + strings.Repeat("x", 100_000) + "\r\n." + strings.Repeat("y", 70_000) + "\r\n"),
	[]byte("\xef\xbb\xbfSubject: BOM\r\n\r\nkept\r\n"),
	[]byte("Subject: bare LF inside\r\n\r\nline\nwith bare LF\n.dot after LF\r\n"),
	[]byte("\r\n"),
	[]byte("Subject: ends with dot line\r\n\r\nbody\r\n.\r\n"),
}

func TestListOpenByteExact(t *testing.T) {
	s := setup(t, nil)
	var uids []string
	for _, m := range tricky {
		uids = append(uids, s.AddMessage(user, m))
	}
	big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 100_000) // 6.4 MB
	uids = append(uids, s.AddMessage(user, big))
	all := append(slices.Clone(tricky), big)

	mb := dial(t, s, opts(s, ""))
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(all) {
		t.Fatalf("%d messages listed, want %d", len(list), len(all))
	}
	for i, info := range list {
		if info.UID != mailaccess.UID(uids[i]) || info.Size != int64(len(all[i])) {
			t.Errorf("message %d: %+v, want UID %s size %d", i, info, uids[i], len(all[i]))
		}
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, all[i]) {
			t.Errorf("message %d: %d bytes differ from the %d stored (first 80: %q)", i, len(got), len(all[i]), got[:min(80, len(got))])
		}
	}
	// Reading them again in reverse order works too.
	for i := len(list) - 1; i >= 0; i-- {
		if got := readAll(t, mb, list[i].UID); !bytes.Equal(got, all[i]) {
			t.Errorf("message %d differs on second read", i)
		}
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestMessageWithoutFinalCRLF(t *testing.T) {
	// A message that does not end with CRLF cannot be sent as is: the
	// server adds CRLF before the terminator, and the client gets it.
	s := setup(t, nil)
	s.AddMessage(user, []byte("Subject: x\r\n\r\nno final CRLF"))
	mb := dial(t, s, opts(s, ""))
	list, _ := mb.List(t.Context())
	if got := readAll(t, mb, list[0].UID); string(got) != "Subject: x\r\n\r\nno final CRLF\r\n" {
		t.Fatalf("got %q", got)
	}
}

func TestOpenWithoutList(t *testing.T) {
	s := setup(t, nil)
	s.AddMessage(user, []byte("one\r\n"))
	uid := s.AddMessage(user, []byte("two\r\n"))
	mb := dial(t, s, opts(s, ""))
	if got := readAll(t, mb, mailaccess.UID(uid)); string(got) != "two\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := names(commandsNow(s)); !slices.Contains(got, "UIDL") || !slices.Contains(got, "RETR") {
		t.Fatalf("commands %v", got)
	}
}

func TestOpenNotFound(t *testing.T) {
	s := setup(t, nil)
	uid := s.AddMessage(user, []byte("one\r\n"))
	mb := dial(t, s, opts(s, ""))
	_, err := mb.Open(t.Context(), "no-such-uid")
	wantKind(t, err, mailaccess.ErrNotFound)

	s.SetFault(func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" {
			return poptest.Fault{Err: "no such message"}
		}
		return poptest.Fault{}
	})
	_, err = mb.Open(t.Context(), mailaccess.UID(uid))
	e := wantKind(t, err, mailaccess.ErrNotFound)
	if e.Text != "no such message" {
		t.Errorf("text %q", e.Text)
	}
	s.SetFault(func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" {
			return poptest.Fault{Err: "[SYS/TEMP] storage hiccup"}
		}
		return poptest.Fault{}
	})
	_, err = mb.Open(t.Context(), mailaccess.UID(uid))
	if e := wantKind(t, err, mailaccess.ErrUnavailable); !e.Temporary() {
		t.Error("SYS/TEMP not temporary")
	}
	s.SetFault(nil)
	// -ERR leaves the session usable.
	if got := readAll(t, mb, mailaccess.UID(uid)); string(got) != "one\r\n" {
		t.Fatalf("got %q", got)
	}
}

func TestReaderClosedEarlyDrains(t *testing.T) {
	s := setup(t, nil)
	first := s.AddMessage(user, bytes.Repeat([]byte("line of text\r\n"), 10_000))
	second := s.AddMessage(user, []byte("second\r\n"))
	mb := dial(t, s, opts(s, ""))
	r, err := mb.Open(t.Context(), mailaccess.UID(first))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
	if got := readAll(t, mb, mailaccess.UID(second)); string(got) != "second\r\n" {
		t.Fatalf("got %q", got)
	}
	// A reader left open is closed (drained) by the next call.
	r, err = mb.Open(t.Context(), mailaccess.UID(first))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); err == nil {
		t.Fatal("reader still usable after another call")
	}
	if got := readAll(t, mb, mailaccess.UID(second)); string(got) != "second\r\n" {
		t.Fatalf("got %q", got)
	}
}

func TestDeleteCloseCommits(t *testing.T) {
	s := setup(t, nil)
	a := s.AddMessage(user, []byte("a\r\n"))
	b := s.AddMessage(user, []byte("b\r\n"))
	c := s.AddMessage(user, []byte("c\r\n"))
	mb := dial(t, s, opts(s, ""))
	if err := mb.Delete(t.Context(), mailaccess.UID(a), mailaccess.UID(c), mailaccess.UID(a)); err != nil {
		t.Fatal(err)
	}
	// Marked messages are gone from this session's view.
	_, err := mb.Open(t.Context(), mailaccess.UID(a))
	wantKind(t, err, mailaccess.ErrNotFound)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].UID != mailaccess.UID(b) {
		t.Fatalf("List after Delete = %+v", list)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.UIDs(user); !slices.Equal(got, []string{b}) {
		t.Fatalf("server keeps %v, want [%s]", got, b)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatalf("Abort after Close: %v", err)
	}
	_, err = mb.List(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
}

func TestDeleteAbortRollsBack(t *testing.T) {
	s := setup(t, nil)
	a := s.AddMessage(user, []byte("a\r\n"))
	b := s.AddMessage(user, []byte("b\r\n"))
	mb := dial(t, s, opts(s, ""))
	if err := mb.Delete(t.Context(), mailaccess.UID(a), mailaccess.UID(b)); err != nil {
		t.Fatal(err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatal(err)
	}
	cmds := names(commands(t, s))
	if slices.Contains(cmds, "QUIT") {
		t.Fatalf("QUIT sent by Abort: %v", cmds)
	}
	if got := s.UIDs(user); !slices.Equal(got, []string{a, b}) {
		t.Fatalf("server keeps %v, want both", got)
	}
	err := mb.Close(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
}

func TestDeleteUnknownUID(t *testing.T) {
	s := setup(t, nil)
	a := s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	err := mb.Delete(t.Context(), mailaccess.UID(a), "gone")
	wantKind(t, err, mailaccess.ErrNotFound)
	if slices.Contains(names(commandsNow(s)), "DELE") {
		t.Fatal("DELE sent although a UID was unknown")
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(s.UIDs(user)) != 1 {
		t.Fatal("message deleted")
	}
}

func TestDeletePipelined(t *testing.T) {
	s := setup(t, nil)
	var uids []mailaccess.UID
	for i := range 300 {
		uids = append(uids, mailaccess.UID(s.AddMessage(user, fmt.Appendf(nil, "m%d\r\n", i))))
	}
	o := opts(s, "")
	o.Security = mailaccess.SecurityInsecureCleartext
	var writes atomic.Int64
	o.DialContext = countingDialer(&writes)
	mb := dial(t, s, o)
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	if err := mb.Delete(t.Context(), uids...); err != nil {
		t.Fatal(err)
	}
	// 300 DELEs in one write: one round trip.
	if n := writes.Load() - before; n != 1 {
		t.Errorf("%d writes for 300 pipelined DELEs, want 1", n)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.UIDs(user)); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

func TestDeleteNotPipelined(t *testing.T) {
	s := setup(t, &poptest.Config{NoPipelining: true})
	a := s.AddMessage(user, []byte("a\r\n"))
	b := s.AddMessage(user, []byte("b\r\n"))
	mb := dial(t, s, opts(s, ""))
	if err := mb.Delete(t.Context(), mailaccess.UID(a), mailaccess.UID(b)); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.UIDs(user)); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

func TestDeleteRefused(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprint("pipelining=", pipelining), func(t *testing.T) {
			s := setup(t, &poptest.Config{NoPipelining: !pipelining, Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == "DELE" && slices.Equal(c.Args, []string{"2"}) {
					return poptest.Fault{Err: "[SYS/TEMP] cannot mark"}
				}
				return poptest.Fault{}
			}})
			a := s.AddMessage(user, []byte("a\r\n"))
			b := s.AddMessage(user, []byte("b\r\n"))
			c := s.AddMessage(user, []byte("c\r\n"))
			mb := dial(t, s, opts(s, ""))
			err := mb.Delete(t.Context(), mailaccess.UID(a), mailaccess.UID(b), mailaccess.UID(c))
			wantKind(t, err, mailaccess.ErrUnavailable)
			if !strings.Contains(err.Error(), b) || strings.Contains(err.Error(), a) {
				t.Errorf("error does not name just the refused UID: %v", err)
			}
			if err := mb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := s.UIDs(user); !slices.Equal(got, []string{b}) {
				t.Fatalf("server keeps %v, want [%s]", got, b)
			}
		})
	}
}

func TestQuitErrCommitFailed(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "QUIT" {
			return poptest.Fault{Err: "[SYS/TEMP] some deleted messages not removed"}
		}
		return poptest.Fault{}
	}})
	a := s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	if err := mb.Delete(t.Context(), mailaccess.UID(a)); err != nil {
		t.Fatal(err)
	}
	err := mb.Close(t.Context())
	e := wantKind(t, err, mailaccess.ErrCommitFailed)
	if !strings.Contains(e.Text, "some deleted messages not removed") {
		t.Errorf("text %q", e.Text)
	}
	if !e.Temporary() {
		t.Error("SYS/TEMP not temporary")
	}
	if errors.Is(err, mailaccess.ErrCommitUnknown) {
		t.Error("commit failed and unknown at once")
	}
	if got := s.UIDs(user); !slices.Equal(got, []string{a}) {
		t.Fatalf("server keeps %v", got)
	}
	if err2 := mb.Close(t.Context()); !errors.Is(err2, mailaccess.ErrCommitFailed) {
		t.Fatalf("second Close: %v", err2)
	}
}

func TestQuitDropCommitUnknown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     poptest.Fault
		committed bool
	}{
		{"dropped after QUIT executed", poptest.Fault{DropAfterExec: true}, true},
		{"dropped before QUIT executed", poptest.Fault{Drop: true}, false},
		{"reply cut", poptest.Fault{DropAfterBytes: 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == "QUIT" {
					return tc.fault
				}
				return poptest.Fault{}
			}})
			a := s.AddMessage(user, []byte("a\r\n"))
			b := s.AddMessage(user, []byte("b\r\n"))
			mb := dial(t, s, opts(s, ""))
			if err := mb.Delete(t.Context(), mailaccess.UID(a)); err != nil {
				t.Fatal(err)
			}
			err := mb.Close(t.Context())
			e := wantKind(t, err, mailaccess.ErrCommitUnknown)
			if !e.Temporary() {
				t.Error("not temporary")
			}
			commands(t, s) // wait until the server is done
			want := []string{a, b}
			if tc.committed {
				want = []string{b}
			}
			if got := s.UIDs(user); !slices.Equal(got, want) {
				t.Fatalf("server keeps %v, want %v", got, want)
			}
		})
	}
}

func TestQuitWithoutMarks(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "QUIT" {
			return poptest.Fault{Drop: true}
		}
		return poptest.Fault{}
	}})
	mb := dial(t, s, opts(s, ""))
	err := mb.Close(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
	if errors.Is(err, mailaccess.ErrCommitUnknown) {
		t.Fatal("nothing to commit, yet commit unknown")
	}
	if !slices.Contains(names(commands(t, s)), "QUIT") {
		t.Fatal("QUIT not sent")
	}
}

func TestCloseAfterFailureCommitsNothing(t *testing.T) {
	s := setup(t, nil)
	a := s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	if err := mb.Delete(t.Context(), mailaccess.UID(a)); err != nil {
		t.Fatal(err)
	}
	s.CloseClientConnections()
	_, err := mb.List(t.Context())
	if e := wantKind(t, err, mailaccess.ErrConnection); !e.Temporary() {
		t.Error("dropped connection not temporary")
	}
	// Every later call fails at once.
	_, err = mb.Open(t.Context(), mailaccess.UID(a))
	wantKind(t, err, mailaccess.ErrConnection)
	err = mb.Close(t.Context())
	wantKind(t, err, mailaccess.ErrCommitFailed)
	if got := s.UIDs(user); !slices.Equal(got, []string{a}) {
		t.Fatalf("server keeps %v", got)
	}
}

func TestDescribe(t *testing.T) {
	t.Run("EXPIRE 0", func(t *testing.T) {
		s := setup(t, &poptest.Config{Expire: "0"})
		mb := dial(t, s, opts(s, ""))
		d := mb.Describe()
		if d.Protocol != "pop3" || !d.DeletesOnRetrieval || d.SessionUIDs {
			t.Fatalf("%+v", d)
		}
		if !slices.ContainsFunc(d.Capabilities, func(c string) bool { return strings.HasPrefix(c, "EXPIRE") }) {
			t.Fatalf("capabilities %v", d.Capabilities)
		}
	})
	t.Run("EXPIRE NEVER", func(t *testing.T) {
		s := setup(t, &poptest.Config{Expire: "NEVER"})
		mb := dial(t, s, opts(s, ""))
		if d := mb.Describe(); d.DeletesOnRetrieval {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("no UIDL", func(t *testing.T) {
		s := setup(t, &poptest.Config{NoUIDL: true})
		s.AddMessage(user, []byte("a\r\n"))
		s.AddMessage(user, []byte("b\r\n"))
		mb := dial(t, s, opts(s, ""))
		if d := mb.Describe(); !d.SessionUIDs {
			t.Fatalf("%+v", d)
		}
		list, err := mb.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].UID != "#1" || list[1].UID != "#2" {
			t.Fatalf("%+v", list)
		}
		if got := readAll(t, mb, "#2"); string(got) != "b\r\n" {
			t.Fatalf("got %q", got)
		}
		if slices.Contains(names(commandsNow(s)), "UIDL") {
			t.Fatal("UIDL sent although not announced")
		}
	})
}

func TestRFC1939Server(t *testing.T) {
	t.Run("with UIDL", func(t *testing.T) {
		s := setup(t, &poptest.Config{NoCAPA: true})
		uid := s.AddMessage(user, []byte("a\r\n"))
		o := opts(s, "")
		o.Security = mailaccess.SecurityInsecureCleartext
		mb := dial(t, s, o)
		if d := mb.Describe(); d.SessionUIDs || d.Capabilities != nil {
			t.Fatalf("%+v", d)
		}
		list, err := mb.List(t.Context())
		if err != nil || len(list) != 1 || list[0].UID != mailaccess.UID(uid) {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if err := mb.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := names(commands(t, s))
		if want := []string{"CAPA", "USER", "PASS", "UIDL", "LIST", "QUIT"}; !slices.Equal(got, want) {
			t.Fatalf("commands %v, want %v (one listing)", got, want)
		}
	})
	t.Run("without UIDL", func(t *testing.T) {
		s := setup(t, &poptest.Config{NoCAPA: true, NoUIDL: true})
		s.AddMessage(user, []byte("a\r\n"))
		o := opts(s, "")
		o.Security = mailaccess.SecurityInsecureCleartext
		mb := dial(t, s, o)
		if d := mb.Describe(); !d.SessionUIDs {
			t.Fatalf("%+v", d)
		}
		list, err := mb.List(t.Context())
		if err != nil || len(list) != 1 || list[0].UID != "#1" {
			t.Fatalf("List = %+v, %v", list, err)
		}
	})
}

func TestListingProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, reply string
	}{
		{"blank line in UIDL", "UIDL", "+OK\r\n1 a\r\n\r\n2 b\r\n.\r\n"},
		{"duplicate UIDL value", "UIDL", "+OK\r\n1 same\r\n2 same\r\n.\r\n"},
		{"duplicate message number", "UIDL", "+OK\r\n1 a\r\n1 b\r\n.\r\n"},
		{"UIDL with control character", "UIDL", "+OK\r\n1 a\x01b\r\n2 b\r\n.\r\n"},
		{"malformed LIST size", "LIST", "+OK\r\n1 12\r\n2 -5\r\n.\r\n"},
		{"LIST and UIDL disagree", "LIST", "+OK\r\n1 3\r\n.\r\n"},
		{"LIST number not in UIDL", "LIST", "+OK\r\n1 3\r\n3 3\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == tc.cmd && len(c.Args) == 0 {
					return poptest.Fault{Reply: tc.reply}
				}
				return poptest.Fault{}
			}})
			s.AddMessage(user, []byte("a\r\n"))
			s.AddMessage(user, []byte("b\r\n"))
			mb := dial(t, s, opts(s, ""))
			_, err := mb.List(t.Context())
			wantKind(t, err, mailaccess.ErrProtocol)
		})
	}
}

func TestDuplicateUIDL(t *testing.T) {
	s := setup(t, nil)
	s.AddMessageUID(user, "dup", []byte("a\r\n"))
	s.AddMessageUID(user, "dup", []byte("b\r\n"))
	mb := dial(t, s, opts(s, ""))
	_, err := mb.List(t.Context())
	wantKind(t, err, mailaccess.ErrProtocol)
	_, err = mb.Open(t.Context(), "dup")
	wantKind(t, err, mailaccess.ErrProtocol)
}

// lyingRETR makes RETR answer with a body of n bytes, unterminated.
func lyingRETR(n int) func(poptest.Command) poptest.Fault {
	body := "+OK\r\n" + strings.Repeat(strings.Repeat("z", 98)+"\r\n", n/100)
	return func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" {
			return poptest.Fault{Reply: body}
		}
		return poptest.Fault{}
	}
}

func TestLyingSizeEndsSession(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int // octets after which the read must fail
	}{
		{"twice LIST size plus slack", 2*7 + 64<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &poptest.Config{Fault: lyingRETR(1 << 20)})
			uid := s.AddMessage(user, []byte("short\r\n")) // listed as 7 octets
			mb := dial(t, s, opts(s, ""))
			r, err := mb.Open(t.Context(), mailaccess.UID(uid))
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, r)
			wantKind(t, err, mailaccess.ErrProtocol)
			if n > int64(tc.limit) {
				t.Fatalf("read %d octets, limit %d", n, tc.limit)
			}
			_, err = mb.List(t.Context())
			wantKind(t, err, mailaccess.ErrConnection)
		})
	}
}

func TestUnterminatedListing(t *testing.T) {
	// A UIDL line that never ends is cut at a few KiB.
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "UIDL" {
			return poptest.Fault{Reply: "+OK\r\n1 " + strings.Repeat("a", 100_000)}
		}
		return poptest.Fault{}
	}})
	s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	_, err := mb.List(t.Context())
	wantKind(t, err, mailaccess.ErrProtocol)
}

func TestEmptyStatusLine(t *testing.T) {
	// go-pop3 alone takes an empty line for +OK.
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "DELE" {
			return poptest.Fault{Reply: "\r\n"}
		}
		return poptest.Fault{}
	}})
	a := s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	err := mb.Delete(t.Context(), mailaccess.UID(a))
	wantKind(t, err, mailaccess.ErrProtocol)
	// Nothing was marked, so there is nothing to commit.
	err = mb.Close(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
}

func TestGreetings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     poptest.Fault
		kind      error
		temporary bool
	}{
		{"garbage", poptest.Fault{Reply: "HTTP/1.1 400 Bad Request\r\n"}, mailaccess.ErrProtocol, false},
		{"empty line", poptest.Fault{Reply: "\r\n"}, mailaccess.ErrProtocol, false},
		{"never ends", poptest.Fault{Reply: "+OK " + strings.Repeat("x", 50_000)}, mailaccess.ErrProtocol, false},
		{"-ERR", poptest.Fault{Err: "too many connections"}, mailaccess.ErrUnavailable, true},
		{"-ERR [SYS/PERM]", poptest.Fault{Err: "[SYS/PERM] service closed"}, mailaccess.ErrServer, false},
		{"closed at once", poptest.Fault{Drop: true}, mailaccess.ErrConnection, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Seq == 0 {
					return tc.fault
				}
				return poptest.Fault{}
			}})
			start := time.Now()
			_, err := pop.Dial(t.Context(), s.Addr, opts(s, ""))
			e := wantKind(t, err, tc.kind)
			if e.Temporary() != tc.temporary {
				t.Errorf("temporary = %v", e.Temporary())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "LIST" {
			return poptest.Fault{Stall: time.Minute}
		}
		return poptest.Fault{}
	}})
	o := opts(s, "")
	o.Timeout = 200 * time.Millisecond
	mb := dial(t, s, o)
	start := time.Now()
	_, err := mb.List(t.Context())
	if e := wantKind(t, err, mailaccess.ErrConnection); !e.Temporary() {
		t.Error("timeout not temporary")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("not a timeout: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestStalledGreetingTimesOut(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Seq == 0 {
			return poptest.Fault{Stall: time.Minute}
		}
		return poptest.Fault{}
	}})
	o := opts(s, "")
	o.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := pop.Dial(t.Context(), s.Addr, o)
	wantKind(t, err, mailaccess.ErrConnection)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestCancelMidRETR(t *testing.T) {
	// RETR sends part of the body and then nothing: the read blocks until
	// the context is cancelled.
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" {
			return poptest.Fault{Reply: "+OK\r\nSubject: partial\r\n\r\nfirst part\r\n"}
		}
		return poptest.Fault{}
	}})
	uid := s.AddMessage(user, bytes.Repeat([]byte("x"), 1000))
	o := opts(s, "")
	o.Timeout = time.Minute
	mb := dial(t, s, o)
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r, err := mb.Open(ctx, mailaccess.UID(uid))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	wantKind(t, err, mailaccess.ErrConnection)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	_, err = mb.List(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
}

func TestCancelledContextSendsNothing(t *testing.T) {
	s := setup(t, nil)
	s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	before := len(s.Commands())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := mb.List(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if len(s.Commands()) != before {
		t.Fatal("command sent on a cancelled context")
	}
	// Nothing was sent, so the session goes on.
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestServerClosesBetweenCommands(t *testing.T) {
	s := setup(t, nil)
	s.AddMessage(user, []byte("a\r\n"))
	mb := dial(t, s, opts(s, ""))
	s.CloseClientConnections()
	start := time.Now()
	_, err := mb.List(t.Context())
	wantKind(t, err, mailaccess.ErrConnection)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestDropMidRETR(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" {
			return poptest.Fault{DropAfterBytes: 5000}
		}
		return poptest.Fault{}
	}})
	uid := s.AddMessage(user, bytes.Repeat([]byte("0123456789\r\n"), 10_000))
	mb := dial(t, s, opts(s, ""))
	r, err := mb.Open(t.Context(), mailaccess.UID(uid))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	if e := wantKind(t, err, mailaccess.ErrConnection); !e.Temporary() {
		t.Error("not temporary")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("not an unexpected EOF: %v", err)
	}
}

func TestAbortFromAnotherGoroutine(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "LIST" {
			return poptest.Fault{Stall: time.Minute}
		}
		return poptest.Fault{}
	}})
	o := opts(s, "")
	o.Timeout = time.Minute
	mb := dial(t, s, o)
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(50 * time.Millisecond)
		mb.Abort()
	})
	start := time.Now()
	_, err := mb.List(t.Context())
	wg.Wait()
	wantKind(t, err, mailaccess.ErrConnection)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestName(t *testing.T) {
	s := setup(t, nil)
	s.AddUser("bob@example.com", "pw")
	o := opts(s, "")
	o.Auth.Username = "bob@example.com"
	o.Auth.Password = "pw"
	mb := dial(t, s, o)
	if got, want := mb.Name(), "pop3://bob%40example.com@127.0.0.1"; got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
}

// countingDialer dials TCP and counts the writes on the connection.
func countingDialer(writes *atomic.Int64) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: writes}, nil
	}
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
