package pop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// wireSecret is a password or token that must never cross the network in
// cleartext.
const wireSecret = "Wire-Secret-0123456789"

// assertNoCleartextCredential fails if the bytes the client wrote hold a
// login verb or the secret (in clear or in base64 at any alignment).
func assertNoCleartextCredential(t *testing.T, written []byte) {
	t.Helper()
	for _, verb := range []string{"USER ", "PASS ", "AUTH ", "APOP "} {
		if bytes.Contains(written, []byte(verb)) {
			t.Errorf("%q sent in cleartext: %q", verb, written)
		}
	}
	if bytes.Contains(written, []byte(wireSecret)) {
		t.Errorf("secret sent in cleartext")
	}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + wireSecret))
		if bytes.Contains(written, []byte(enc[4:len(enc)-4])) {
			t.Errorf("secret sent in cleartext base64")
		}
	}
}

func TestNoCredentialInCleartext(t *testing.T) {
	injectAtSTLS := func(c poptest.Command) poptest.Fault {
		if c.Name == "STLS" {
			return poptest.Fault{Reply: "+OK go\r\n+OK injected\r\n"}
		}
		return poptest.Fault{}
	}
	refuseSTLS := func(c poptest.Command) poptest.Fault {
		if c.Name == "STLS" {
			return poptest.Fault{Err: "no TLS today"}
		}
		return poptest.Fault{}
	}
	for _, sc := range []struct {
		name    string
		cfg     poptest.Config
		badCert bool
		kind    error // nil: the login succeeds, over TLS
	}{
		{"STLS works", poptest.Config{}, false, nil},
		{"STLS not offered", poptest.Config{NoSTLS: true}, false, mailaccess.ErrTLS},
		{"no CAPA", poptest.Config{NoCAPA: true}, false, mailaccess.ErrTLS},
		{"STLS refused", poptest.Config{Fault: refuseSTLS}, false, mailaccess.ErrTLS},
		{"response injected before the handshake", poptest.Config{Fault: injectAtSTLS}, false, mailaccess.ErrTLS},
		{"untrusted certificate", poptest.Config{}, true, mailaccess.ErrTLS},
	} {
		for _, mech := range []string{"", "LOGIN", "PLAIN", "APOP", "XOAUTH2", "OAUTHBEARER"} {
			t.Run(sc.name+"/"+mech, func(t *testing.T) {
				cfg := sc.cfg
				cfg.APOP = true
				cfg.SASL = allSASL
				cfg.Tokens = map[string]string{wireSecret: user}
				s := poptest.NewServer(t, &cfg)
				s.AddUser(user, wireSecret)
				o := opts(s, mech)
				o.Auth.Password = wireSecret
				if mech == "XOAUTH2" || mech == "OAUTHBEARER" {
					o.Auth.Password = ""
					o.Auth.Token = func(context.Context) (string, error) { return wireSecret, nil }
				}
				if sc.badCert {
					o.TLSConfig = &tls.Config{ServerName: "127.0.0.1"} // the system's roots
				}
				var rc *recordingConn
				o.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					rc = &recordingConn{Conn: c}
					return rc, err
				}
				mb, err := pop.Dial(t.Context(), s.Addr, o)
				if sc.kind == nil {
					if err != nil {
						t.Fatal(err)
					}
					mb.Abort()
				} else {
					wantKind(t, err, sc.kind)
				}
				assertNoCleartextCredential(t, bytes.Join(rc.Writes(), nil))
				if sc.kind != nil {
					for _, c := range names(commands(t, s)) {
						if c == "USER" || c == "PASS" || c == "AUTH" || c == "APOP" {
							t.Fatalf("login command %s reached the server", c)
						}
					}
				}
			})
		}
	}
}

func TestSTLSInjectionInALaterSegment(t *testing.T) {
	// Bytes injected after the +OK to STLS, in a later segment, reach the
	// handshake, which fails: nothing is sent in cleartext after STLS.
	noLeak(t)
	written := make(chan []byte, 1)
	o := hostile(t, func(c net.Conn, br *bufio.Reader) {
		var b []byte
		defer func() { written <- b }()
		io.WriteString(c, "+OK hi\r\n")
		if converse(c, br, map[string]string{"CAPA": "+OK\r\nSTLS\r\nUSER\r\n.\r\n"}) != "STLS" {
			return
		}
		io.WriteString(c, "+OK begin\r\n")
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, "+OK injected\r\n")
		b, _ = io.ReadAll(br)
	})
	o.Security = mailaccess.SecurityStartTLS
	o.TLSConfig = &tls.Config{ServerName: "127.0.0.1"}
	_, err := pop.Dial(t.Context(), hostileAddr, o)
	wantKind(t, err, mailaccess.ErrTLS)
	assertNoCleartextCredential(t, <-written)
}

func TestAPOPOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  poptest.Config
		want string // the login verb used
	}{
		{"APOP timestamp, no SASL", poptest.Config{APOP: true, NoSASL: true}, "USER"},
		{"APOP timestamp and SASL PLAIN", poptest.Config{APOP: true}, "AUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, &tc.cfg)
			mb := dial(t, s, opts(s, ""))
			mb.Abort()
			got := names(commands(t, s))
			if slices.Contains(got, "APOP") || !slices.Contains(got, tc.want) {
				t.Fatalf("commands %v, want %s and no APOP", got, tc.want)
			}
		})
	}
}

func TestControlCharactersRefusedEverywhere(t *testing.T) {
	// Every value a caller gives that could reach the wire is refused with
	// CR, LF or NUL in it, before anything is sent.
	token := func(tok string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return tok, nil }
	}
	for _, bad := range []string{"\r", "\n", "\x00", "\r\nQUIT"} {
		for _, tc := range []struct {
			name string
			addr string
			auth mailaccess.Auth
		}{
			{"username", "127.0.0.1:110", mailaccess.Auth{Username: "bob" + bad, Password: "pw"}},
			{"username, APOP", "127.0.0.1:110", mailaccess.Auth{Username: "bob" + bad, Password: "pw", Mechanism: "APOP"}},
			{"password", "127.0.0.1:110", mailaccess.Auth{Username: "bob", Password: "pw" + bad}},
			{"password, PLAIN", "127.0.0.1:110", mailaccess.Auth{Username: "bob", Password: "pw" + bad, Mechanism: "PLAIN"}},
			{"mechanism", "127.0.0.1:110", mailaccess.Auth{Username: "bob", Password: "pw", Mechanism: "PLAIN" + bad}},
			{"token", "127.0.0.1:110", mailaccess.Auth{Username: "bob", Mechanism: "XOAUTH2", Token: token("tok" + bad)}},
			{"token, automatic mechanism", "127.0.0.1:110", mailaccess.Auth{Username: "bob", Token: token("tok" + bad)}},
			{"address", "127.0.0.1" + bad + ":110", mailaccess.Auth{Username: "bob", Password: "pw"}},
		} {
			t.Run(tc.name+"/"+strings.ReplaceAll(strings.ReplaceAll(bad, "\r", "CR"), "\n", "LF"), func(t *testing.T) {
				dialed := false
				o := &pop.Options{
					DialOptions: mailaccess.DialOptions{
						Auth:     tc.auth,
						Security: mailaccess.SecurityInsecureCleartext,
						DialContext: func(context.Context, string, string) (net.Conn, error) {
							dialed = true
							return nil, errors.New("must not dial")
						},
					},
				}
				_, err := pop.Dial(t.Context(), tc.addr, o)
				wantKind(t, err, mailaccess.ErrInvalidArgument)
				if dialed {
					t.Fatal("dialed before refusing")
				}
			})
		}
	}

	// UIDs, after login: nothing is sent, the session goes on.
	s := setup(t, nil)
	uid := s.AddMessage(user, []byte("x\r\n"))
	mb := dial(t, s, opts(s, ""))
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := len(s.Commands())
	for _, bad := range []string{"\r", "\n", "\x00"} {
		_, err := mb.Open(t.Context(), mailaccess.UID(uid+bad))
		wantKind(t, err, mailaccess.ErrInvalidArgument)
		err = mb.Delete(t.Context(), mailaccess.UID(uid), mailaccess.UID(uid+bad))
		wantKind(t, err, mailaccess.ErrInvalidArgument)
		mb.WillOpen(mailaccess.UID(uid + bad))
	}
	if after := s.Commands(); len(after) != before {
		t.Fatalf("commands sent: %v", after[before:])
	}
	if got := readAll(t, mb, mailaccess.UID(uid)); string(got) != "x\r\n" {
		t.Fatalf("%q", got)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if left := len(s.UIDs(user)); left != 1 {
		t.Fatalf("%d messages left: a refused Delete marked something", left)
	}
}
