package poptest

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// client is a minimal raw POP3 client for the tests: it checks every byte
// the server sends.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func newClient(t testing.TB, conn net.Conn) *client {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// dial connects to srv (cleartext) and reads the greeting.
func dial(t testing.TB, srv *Server) (*client, string) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := newClient(t, conn)
	g := c.line()
	if !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return c, g
}

// line reads one reply line, which must end with CRLF, and returns it
// without the CRLF.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("reply line %q does not end with CRLF", s)
	}
	return s[:len(s)-2]
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s+"\r\n"); err != nil {
		c.t.Fatalf("sending %q: %v", s, err)
	}
}

func (c *client) cmd(s string) string {
	c.t.Helper()
	c.send(s)
	return c.line()
}

// ok sends a command and requires +OK.
func (c *client) ok(s string) string {
	c.t.Helper()
	r := c.cmd(s)
	if !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("%s: got %q, want +OK", redactLine(s), r)
	}
	return r
}

// fail sends a command and requires a reply starting with want (an -ERR).
func (c *client) fail(s, want string) {
	c.t.Helper()
	r := c.cmd(s)
	if !strings.HasPrefix(r, want) {
		c.t.Fatalf("%s: got %q, want %q...", redactLine(s), r, want)
	}
}

func redactLine(s string) string {
	if strings.HasPrefix(s, "PASS ") {
		return "PASS <redacted>"
	}
	return s
}

// wire reads a multi-line body up to and including the terminator and
// returns the raw bytes as sent.
func (c *client) wire() []byte {
	c.t.Helper()
	var b []byte
	for {
		s, err := c.r.ReadBytes('\n')
		if err != nil {
			c.t.Fatalf("reading multi-line body: %v (got %q)", err, b)
		}
		b = append(b, s...)
		if bytes.Equal(s, []byte(".\r\n")) && (len(b) == 3 || bytes.HasSuffix(b[:len(b)-3], []byte("\r\n"))) {
			return b
		}
	}
}

// body reads a multi-line body and undoes the dot-stuffing.
func (c *client) body() []byte {
	c.t.Helper()
	w := c.wire()
	w = w[:len(w)-3] // ".\r\n"
	var out []byte
	for len(w) > 0 {
		i := bytes.IndexByte(w, '\n')
		ln := w[:i+1]
		w = w[i+1:]
		if ln[0] == '.' {
			ln = ln[1:]
		}
		out = append(out, ln...)
	}
	return out
}

// lines reads a multi-line body as lines.
func (c *client) lines() []string {
	c.t.Helper()
	b := c.body()
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}

// eof requires the server to close the connection with nothing more sent.
func (c *client) eof() {
	c.t.Helper()
	b, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			c.t.Fatalf("waiting for close: %v", err)
		}
	}
	if len(b) != 0 {
		c.t.Fatalf("got %q before close, want nothing", b)
	}
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	c.ok("USER " + user)
	c.ok("PASS " + pass)
}

// startTLS sends STLS and does the handshake.
func (c *client) startTLS(srv *Server) {
	c.t.Helper()
	c.ok("STLS")
	if c.r.Buffered() != 0 {
		c.t.Fatal("bytes after the STLS reply")
	}
	tc := tls.Client(c.conn, srv.ClientTLSConfig())
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func newAlice(t *testing.T, cfg *Config) *Server {
	srv := NewServer(t, cfg)
	srv.AddUser("alice", "secret pass")
	return srv
}

func TestCAPA(t *testing.T) {
	srv := newAlice(t, nil)
	c, g := dial(t, srv)
	if strings.Contains(g, "<") {
		t.Errorf("greeting %q has an APOP timestamp without APOP", g)
	}
	c.ok("CAPA")
	want := []string{"USER", "TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "SASL PLAIN", "STLS", "IMPLEMENTATION poptest"}
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA before TLS = %q, want %q", got, want)
	}
	c.startTLS(srv)
	c.ok("CAPA")
	want = slices.DeleteFunc(want, func(s string) bool { return s == "STLS" })
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA after STLS = %q, want %q", got, want)
	}
	c.fail("STLS", "-ERR")
	c.login("alice", "secret pass")
	c.ok("CAPA")
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA after login = %q, want %q", got, want)
	}
	c.ok("QUIT")
	c.eof()
}

func TestCAPAOptions(t *testing.T) {
	srv := newAlice(t, &Config{
		NoUIDL: true, NoTOP: true, NoPipelining: true, NoUSER: true, NoSTLS: true,
		SASL: []string{"xoauth2", "OAUTHBEARER", "PLAIN"}, Expire: "0", LoginDelay: 900,
	})
	c, _ := dial(t, srv)
	c.ok("CAPA")
	want := []string{"RESP-CODES", "AUTH-RESP-CODE", "SASL XOAUTH2 OAUTHBEARER PLAIN", "EXPIRE 0", "LOGIN-DELAY 900", "IMPLEMENTATION poptest"}
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA = %q, want %q", got, want)
	}
	c.fail("STLS", "-ERR")
	c.fail("USER alice", "-ERR")

	srv = newAlice(t, &Config{NoCAPA: true, NoSASL: true, Expire: "NEVER"})
	c, _ = dial(t, srv)
	c.fail("CAPA", "-ERR")
	c.fail("AUTH PLAIN "+b64("\x00alice\x00secret pass"), "-ERR")
	c.ok("USER alice")
	// An RFC 1939-only server sends no response codes.
	c.fail("PASS wrong", "-ERR authentication failed")
}

func TestInvalidExpirePanics(t *testing.T) {
	for _, e := range []string{"never", "-1", "+5", "5 USER", "x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Expire %q: no panic", e)
				}
			}()
			NewUnstartedServer(&Config{Expire: e}).Close()
		}()
	}
	for _, e := range []string{"", "0", "NEVER", "30"} {
		NewUnstartedServer(&Config{Expire: e}).Close()
	}
}

func TestImplicitTLS(t *testing.T) {
	srv := NewTLSServer(t, nil)
	srv.AddUser("alice", "pw")
	srv.AddMessage("alice", []byte("a\r\n"))
	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := srv.ClientTLSConfig()
		cfg.ServerName = name
		conn, err := tls.Dial("tcp", srv.Addr, cfg)
		if err != nil {
			t.Fatalf("ServerName %s: %v", name, err)
		}
		c := newClient(t, conn)
		if g := c.line(); !strings.HasPrefix(g, "+OK") {
			t.Fatalf("greeting %q", g)
		}
		c.ok("CAPA")
		if got := c.lines(); slices.Contains(got, "STLS") {
			t.Errorf("CAPA on implicit TLS offers STLS: %q", got)
		}
		c.fail("STLS", "-ERR")
		c.login("alice", "pw")
		c.ok("QUIT")
	}
	block := srv.CertPEM()
	if !bytes.HasPrefix(block, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("CertPEM = %q", block)
	}
	if err := srv.Certificate().VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}

// TestSTLSDiscardsInjectedBytes sends a command right after STLS, in the
// same write, as an attacker in the middle could inject it: the server must
// not answer it, neither in cleartext nor inside TLS.
func TestSTLSDiscardsInjectedBytes(t *testing.T) {
	srv := NewUnstartedServer(nil)
	defer srv.Close()
	cc, sc := net.Pipe()
	go srv.ServeConn(sc)
	c := newClient(t, cc)
	c.line()
	c.send("STLS\r\nCAPA") // one write: net.Pipe hands it to one server read
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS: %q", r)
	}
	tc := tls.Client(cc, srv.ClientTLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after injected bytes: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	// Not valid before login: the -ERR shows that this is the answer to
	// NOOP, not to the injected CAPA.
	c.fail("NOOP", "-ERR not logged in")
	var got []string
	for _, cmd := range srv.Commands() {
		got = append(got, cmd.String())
	}
	if want := []string{"STLS", "NOOP"}; !slices.Equal(got, want) {
		t.Errorf("Commands = %q, want %q", got, want)
	}
}

func TestRequireTLSForAuth(t *testing.T) {
	srv := newAlice(t, &Config{RequireTLSForAuth: true})
	c, _ := dial(t, srv)
	c.ok("CAPA")
	for _, l := range c.lines() {
		if l == "USER" || strings.HasPrefix(l, "SASL") {
			t.Errorf("CAPA before TLS announces %q", l)
		}
	}
	c.fail("USER alice", "-ERR [AUTH]")
	c.fail("AUTH PLAIN "+b64("\x00alice\x00secret pass"), "-ERR [AUTH]")
	c.startTLS(srv)
	c.ok("CAPA")
	if got := c.lines(); !slices.Contains(got, "USER") || !slices.Contains(got, "SASL PLAIN") {
		t.Errorf("CAPA after STLS = %q", got)
	}
	c.login("alice", "secret pass")
}

func TestUserPass(t *testing.T) {
	srv := newAlice(t, nil)
	c, _ := dial(t, srv)
	c.fail("PASS secret pass", "-ERR")
	c.fail("STAT", "-ERR")
	c.ok("USER alice")
	c.fail("PASS secret", "-ERR [AUTH]")
	c.fail("PASS secret pass", "-ERR") // USER must come again
	c.ok("USER bob")
	c.fail("PASS secret pass", "-ERR [AUTH]")
	c.ok("USER alice")
	if r := c.ok("PASS secret pass"); r != "+OK alice has 0 messages (0 octets)" {
		t.Errorf("PASS reply %q", r)
	}
	c.fail("USER alice", "-ERR")
	c.fail("AUTH PLAIN", "-ERR")
	c.ok("QUIT")
	c.eof()

	log := srv.Commands()
	var got []string
	for _, cmd := range log {
		got = append(got, cmd.String())
	}
	want := []string{"PASS <redacted>", "STAT", "USER alice", "PASS <redacted>", "PASS <redacted>", "USER bob", "PASS <redacted>",
		"USER alice", "PASS <redacted>", "USER alice", "AUTH PLAIN", "QUIT"}
	if !slices.Equal(got, want) {
		t.Errorf("Commands() = %q, want %q", got, want)
	}
	if u := log[len(log)-1].User; u != "alice" {
		t.Errorf("User of QUIT = %q", u)
	}
	if u := log[0].User; u != "" {
		t.Errorf("User before login = %q", u)
	}
}

func TestAPOP(t *testing.T) {
	srv := newAlice(t, &Config{APOP: true})
	digest := func(greeting, pw string) string {
		ts := regexp.MustCompile(`<[^>]+>`).FindString(greeting)
		if ts == "" {
			t.Fatalf("no timestamp in greeting %q", greeting)
		}
		sum := md5.Sum([]byte(ts + pw))
		return hex.EncodeToString(sum[:])
	}
	c, g := dial(t, srv)
	c.fail("APOP alice "+digest(g, "wrong"), "-ERR [AUTH]")
	c.fail("APOP bob "+digest(g, "secret pass"), "-ERR [AUTH]")
	c.fail("APOP alice", "-ERR")
	c.ok("APOP alice " + strings.ToUpper(digest(g, "secret pass")))
	if got := srv.Commands()[3].Args; !slices.Equal(got, []string{"alice", redacted}) {
		t.Errorf("APOP logged as %q", got)
	}

	c2, g2 := dial(t, srv)
	if g == g2 {
		t.Errorf("two greetings with the same timestamp: %q", g)
	}
	c2.fail("APOP alice "+digest(g, "secret pass"), "-ERR [AUTH]") // replayed digest

	srv = newAlice(t, nil)
	c, _ = dial(t, srv)
	c.fail("APOP alice 0123456789abcdef0123456789abcdef", "-ERR")
}

func TestAuthPlain(t *testing.T) {
	srv := newAlice(t, &Config{LockWait: -1})
	good := b64("\x00alice\x00secret pass")
	cases := []struct {
		name  string
		steps []string // command, then continuation lines
		want  string
	}{
		{"initial response", []string{"AUTH PLAIN " + good}, "+OK"},
		{"lower-case mechanism", []string{"auth plain " + good}, "+OK"},
		{"authzid equal", []string{"AUTH PLAIN " + b64("alice\x00alice\x00secret pass")}, "+OK"},
		{"continuation", []string{"AUTH PLAIN", good}, "+OK"},
		{"wrong password", []string{"AUTH PLAIN " + b64("\x00alice\x00secret")}, "-ERR [AUTH]"},
		{"unknown user", []string{"AUTH PLAIN " + b64("\x00bob\x00secret pass")}, "-ERR [AUTH]"},
		{"other authzid", []string{"AUTH PLAIN " + b64("bob\x00alice\x00secret pass")}, "-ERR [AUTH]"},
		{"cancel", []string{"AUTH PLAIN", "*"}, "-ERR"},
		{"empty initial response", []string{"AUTH PLAIN ="}, "-ERR"},
		{"empty continuation", []string{"AUTH PLAIN", ""}, "-ERR"},
		{"bad base64", []string{"AUTH PLAIN !!!"}, "-ERR"},
		{"bad base64 continuation", []string{"AUTH PLAIN", "!!!"}, "-ERR"},
		{"unannounced mechanism", []string{"AUTH XOAUTH2 " + good}, "-ERR"},
		{"no mechanism", []string{"AUTH"}, "-ERR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dial(t, srv)
			c.send(tc.steps[0])
			for _, s := range tc.steps[1:] {
				if r := c.line(); r != "+ " {
					t.Fatalf("continuation %q, want \"+ \"", r)
				}
				c.send(s)
			}
			r := c.line()
			if !strings.HasPrefix(r, tc.want) {
				t.Fatalf("got %q, want %q", r, tc.want)
			}
			if tc.want == "+OK" {
				c.ok("STAT")
				c.ok("QUIT")
			} else {
				c.ok("CAPA") // the session is still in sync
				c.lines()
			}
		})
	}
	for _, cmd := range srv.Commands() {
		if cmd.Name == "AUTH" && len(cmd.Args) > 1 && cmd.Args[1] != redacted {
			t.Errorf("AUTH logged with its response: %q", cmd.Args)
		}
	}
}

func TestAuthUnimplementedMechanism(t *testing.T) {
	srv := newAlice(t, &Config{SASL: []string{"CRAM-MD5", "PLAIN"}})
	c, _ := dial(t, srv)
	c.ok("CAPA")
	if got := c.lines(); !slices.Contains(got, "SASL CRAM-MD5 PLAIN") {
		t.Errorf("CAPA = %q", got)
	}
	c.fail("AUTH CRAM-MD5", "-ERR")
	c.ok("AUTH PLAIN " + b64("\x00alice\x00secret pass"))
}

func TestAuthOAuth(t *testing.T) {
	srv := NewServer(t, &Config{SASL: []string{"XOAUTH2", "OAUTHBEARER"}, Tokens: map[string]string{"tok-a": "alice"}})
	srv.AddToken("tok=b", "b,ob")
	xo := func(user, tok string) string { return b64("user=" + user + "\x01auth=Bearer " + tok + "\x01\x01") }
	ob := func(gs2, tok string) string {
		return b64(gs2 + "\x01host=127.0.0.1\x01port=110\x01auth=Bearer " + tok + "\x01\x01")
	}
	cases := []struct {
		name     string
		steps    []string
		wantFail bool
	}{
		{"xoauth2 initial", []string{"AUTH XOAUTH2 " + xo("alice", "tok-a")}, false},
		{"xoauth2 two-step", []string{"AUTH XOAUTH2", xo("alice", "tok-a")}, false},
		{"xoauth2 lower-case bearer", []string{"AUTH XOAUTH2 " + b64("user=alice\x01auth=bearer tok-a\x01\x01")}, false},
		{"xoauth2 wrong user", []string{"AUTH XOAUTH2 " + xo("bob", "tok-a")}, true},
		{"xoauth2 bad token", []string{"AUTH XOAUTH2 " + xo("alice", "nope")}, true},
		{"xoauth2 malformed", []string{"AUTH XOAUTH2 " + b64("alice tok-a")}, true},
		{"oauthbearer with authzid", []string{"AUTH OAUTHBEARER " + ob("n,a=alice,", "tok-a")}, false},
		{"oauthbearer without authzid", []string{"AUTH OAUTHBEARER " + ob("n,,", "tok-a")}, false},
		{"oauthbearer escaped authzid", []string{"AUTH OAUTHBEARER " + ob("n,a=b=2Cob,", "tok=b")}, false},
		{"oauthbearer two-step", []string{"AUTH OAUTHBEARER", ob("n,a=alice,", "tok-a")}, false},
		{"oauthbearer other user", []string{"AUTH OAUTHBEARER " + ob("n,a=bob,", "tok-a")}, true},
		{"oauthbearer bad token", []string{"AUTH OAUTHBEARER " + ob("n,,", "tok-x")}, true},
		{"oauthbearer bad escape", []string{"AUTH OAUTHBEARER " + ob("n,a=b=2Xob,", "tok=b")}, true},
		{"oauthbearer no gs2 header", []string{"AUTH OAUTHBEARER " + b64("\x01auth=Bearer tok-a\x01\x01")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dial(t, srv)
			c.send(tc.steps[0])
			for _, s := range tc.steps[1:] {
				if r := c.line(); r != "+ " {
					t.Fatalf("continuation %q", r)
				}
				c.send(s)
			}
			r := c.line()
			if !tc.wantFail {
				if !strings.HasPrefix(r, "+OK") {
					t.Fatalf("got %q, want +OK", r)
				}
				c.ok("QUIT")
				return
			}
			// A failure first sends a JSON error challenge; the client
			// answers it (empty, AQ== or *) and then gets -ERR [AUTH].
			chal, ok := strings.CutPrefix(r, "+ ")
			if !ok {
				t.Fatalf("got %q, want an error challenge", r)
			}
			js, err := base64.StdEncoding.DecodeString(chal)
			if err != nil || !strings.Contains(string(js), `"status"`) {
				t.Fatalf("challenge %q (%q, %v)", chal, js, err)
			}
			c.send(b64("\x01"))
			c.fail("", "-ERR [AUTH]")
		})
	}
	// "*" after the error challenge also ends in -ERR [AUTH].
	c, _ := dial(t, srv)
	c.send("AUTH XOAUTH2 " + xo("alice", "nope"))
	if r := c.line(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("got %q", r)
	}
	c.fail("*", "-ERR [AUTH]")
	c.send("AUTH XOAUTH2")
	c.line()
	c.fail("*", "-ERR")
	c.ok("CAPA")
}

func TestInUse(t *testing.T) {
	srv := newAlice(t, &Config{LockWait: -1})
	srv.AddMessage("alice", []byte("m\r\n"))
	c1, _ := dial(t, srv)
	c1.login("alice", "secret pass")
	c1.ok("DELE 1")

	c2, _ := dial(t, srv)
	c2.ok("USER alice")
	c2.fail("PASS secret pass", "-ERR [IN-USE]")
	c2.fail("AUTH PLAIN "+b64("\x00alice\x00secret pass"), "-ERR [IN-USE]")
	c2.fail("PASS wrong", "-ERR") // no USER pending

	c1.ok("QUIT")
	c1.eof()
	c2.login("alice", "secret pass")
	if r := c2.ok("STAT"); r != "+OK 0 0" {
		t.Errorf("STAT after commit: %q", r)
	}
}

// TestLockWait checks that a client that drops a session and logs in again
// at once is not refused: the login waits for the server to notice.
func TestLockWait(t *testing.T) {
	srv := newAlice(t, &Config{LockWait: 5 * time.Second})
	srv.AddMessage("alice", []byte("m\r\n"))
	for range 20 {
		c, _ := dial(t, srv)
		c.login("alice", "secret pass")
		c.ok("DELE 1")
		c.conn.Close()
	}
	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	if r := c.ok("STAT"); r != "+OK 1 3" {
		t.Errorf("STAT = %q: a dropped session committed", r)
	}
}

func TestDotStuffingRoundTrip(t *testing.T) {
	srv := newAlice(t, nil)
	msgs := [][]byte{
		[]byte("Subject: dots\r\n\r\n.\r\n..x\r\n.\r\nmiddle\r\n.last line without CRLF"),
		[]byte("Subject: exact\r\n\r\nbody\r\n.\r\n"),
		{},
		[]byte("bare\nLF\n.dot\r\n"),
		[]byte("\r\n.starts with empty header\r\n"),
	}
	for _, m := range msgs {
		srv.AddMessage("alice", m)
	}
	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("LIST")
	var sizes []string
	for i, m := range msgs {
		sizes = append(sizes, fmt.Sprintf("%d %d", i+1, len(m)))
	}
	if got := c.lines(); !slices.Equal(got, sizes) {
		t.Errorf("LIST = %q, want %q", got, sizes)
	}

	c.send("RETR 1")
	if r := c.line(); r != fmt.Sprintf("+OK %d octets", len(msgs[0])) {
		t.Errorf("RETR status %q", r)
	}
	wantWire := "Subject: dots\r\n\r\n..\r\n...x\r\n..\r\nmiddle\r\n..last line without CRLF\r\n.\r\n"
	if got := string(c.wire()); got != wantWire {
		t.Errorf("RETR 1 on the wire:\n%q\nwant\n%q", got, wantWire)
	}
	for i, m := range msgs[1:] {
		c.ok(fmt.Sprintf("RETR %d", i+2))
		want := m
		if len(m) > 0 && !bytes.HasSuffix(m, []byte("\r\n")) {
			want = append(bytes.Clone(m), "\r\n"...)
		}
		if got := c.body(); !bytes.Equal(got, want) {
			t.Errorf("RETR %d = %q, want %q", i+2, got, want)
		}
	}
	c.send("RETR 3")
	c.line()
	if got := string(c.wire()); got != ".\r\n" {
		t.Errorf("empty message on the wire: %q", got)
	}

	tops := []struct {
		cmd, want string
	}{
		{"TOP 1 0", "Subject: dots\r\n\r\n"},
		{"TOP 1 2", "Subject: dots\r\n\r\n.\r\n..x\r\n"},
		{"TOP 1 100", string(msgs[0]) + "\r\n"},
		{"TOP 2 1", "Subject: exact\r\n\r\nbody\r\n"},
		{"TOP 4 0", "bare\nLF\n.dot\r\n"}, // no empty line: all header
		{"TOP 5 0", "\r\n"},
		{"TOP 5 1", string(msgs[4])},
	}
	for _, tc := range tops {
		c.ok(tc.cmd)
		if got := string(c.body()); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	c.fail("TOP 1 -1", "-ERR")
	c.fail("TOP 1", "-ERR")
	c.fail("TOP 9 0", "-ERR")
}

func TestTransaction(t *testing.T) {
	srv := newAlice(t, nil)
	uids := []string{
		srv.AddMessage("alice", []byte("one\r\n")),
		srv.AddMessage("alice", []byte("second\r\n")),
	}
	if uids[0] == uids[1] {
		t.Fatalf("duplicate UIDs %q", uids)
	}
	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	srv.AddMessage("alice", []byte("late\r\n")) // invisible until the next session
	if r := c.ok("STAT"); r != "+OK 2 13" {
		t.Errorf("STAT = %q", r)
	}
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + uids[0], "2 " + uids[1]}; !slices.Equal(got, want) {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	if r := c.ok("UIDL 2"); r != "+OK 2 "+uids[1] {
		t.Errorf("UIDL 2 = %q", r)
	}
	if r := c.ok("LIST 1"); r != "+OK 1 5" {
		t.Errorf("LIST 1 = %q", r)
	}
	c.fail("LIST 3", "-ERR")
	c.fail("LIST 0", "-ERR")
	c.fail("LIST x", "-ERR")
	c.fail("LIST +1", "-ERR")
	c.fail("LIST 1 2", "-ERR")
	c.fail("RETR", "-ERR")
	c.fail("STAT 1", "-ERR")
	c.ok("DELE 1")
	c.fail("DELE 1", "-ERR")
	c.fail("RETR 1", "-ERR")
	c.fail("LIST 1", "-ERR")
	c.fail("UIDL 1", "-ERR")
	c.fail("TOP 1 0", "-ERR")
	if r := c.ok("STAT"); r != "+OK 1 8" {
		t.Errorf("STAT after DELE = %q", r)
	}
	c.ok("LIST")
	if got := c.lines(); !slices.Equal(got, []string{"2 8"}) {
		t.Errorf("LIST after DELE = %q", got)
	}
	if r := c.ok("RSET"); r != "+OK maildrop has 2 messages (13 octets)" {
		t.Errorf("RSET = %q", r)
	}
	c.ok("RETR 1")
	c.body()
	c.ok("DELE 2")
	if r := c.ok("NOOP"); r != "+OK" {
		t.Errorf("NOOP = %q", r)
	}
	c.fail("XYZZY", "-ERR")
	c.fail("STLS", "-ERR")
	if got := srv.Messages("alice"); len(got) != 3 {
		t.Fatalf("before QUIT the server has %d messages, want 3", len(got))
	}
	c.ok("QUIT")
	c.eof()
	got := srv.Messages("alice")
	if len(got) != 2 || string(got[0]) != "one\r\n" || string(got[1]) != "late\r\n" {
		t.Errorf("after QUIT: %q", got)
	}
	if u := srv.UIDs("alice"); len(u) != 2 || u[0] != uids[0] {
		t.Errorf("UIDs after QUIT: %q", u)
	}
}

func TestDropRollsBack(t *testing.T) {
	srv := newAlice(t, nil)
	srv.SetMessages("alice", [][]byte{[]byte("a\r\n"), []byte("b\r\n")})
	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.conn.Close()
	if err := srv.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages("alice"); len(got) != 2 {
		t.Errorf("a dropped session deleted messages: %q", got)
	}
	for _, cmd := range srv.Commands() {
		if cmd.Name == "QUIT" {
			t.Error("QUIT logged")
		}
	}

	// CloseClientConnections also commits nothing.
	c, _ = dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("DELE 1")
	srv.CloseClientConnections()
	c.eof()
	if err := srv.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages("alice"); len(got) != 2 {
		t.Errorf("CloseClientConnections committed: %q", got)
	}
	c, _ = dial(t, srv) // still listening
	c.login("alice", "secret pass")
}

func TestExpireZero(t *testing.T) {
	srv := newAlice(t, &Config{Expire: "0"})
	srv.SetMessages("alice", [][]byte{[]byte("a\r\n"), []byte("b\r\n"), []byte("c\r\n")})

	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("RETR 1")
	c.body()
	c.conn.Close() // no QUIT: nothing happens
	srv.WaitIdle(t.Context())
	if got := srv.Messages("alice"); len(got) != 3 {
		t.Fatalf("without QUIT: %q", got)
	}

	c, _ = dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("RETR 1")
	c.body()
	c.ok("TOP 2 0") // TOP is not a retrieval
	c.body()
	c.ok("RSET") // does not undo the retrieval
	if r := c.ok("QUIT"); r != "+OK poptest signing off (1 messages deleted)" {
		t.Errorf("QUIT = %q", r)
	}
	if got := srv.Messages("alice"); len(got) != 2 || string(got[0]) != "b\r\n" {
		t.Errorf("after QUIT: %q", got)
	}
}

func TestPipelining(t *testing.T) {
	srv := newAlice(t, nil)
	msg := "Subject: x\r\n\r\n.dot\r\n"
	srv.AddMessage("alice", []byte(msg))
	size := strconv.Itoa(len(msg))
	c, _ := dial(t, srv)
	// One write with the login and a whole transaction.
	c.send("USER alice\r\nPASS secret pass\r\nSTAT\r\nLIST\r\nRETR 1\r\nBOGUS\r\nDELE 1\r\nNOOP\r\nQUIT")
	for _, want := range []string{"+OK send PASS", "+OK alice has 1 messages", "+OK 1 " + size} {
		if r := c.line(); !strings.HasPrefix(r, want) {
			t.Fatalf("got %q, want %q", r, want)
		}
	}
	c.line()
	if got := c.lines(); !slices.Equal(got, []string{"1 " + size}) {
		t.Errorf("LIST = %q", got)
	}
	c.line()
	if got := string(c.body()); got != "Subject: x\r\n\r\n.dot\r\n" {
		t.Errorf("RETR = %q", got)
	}
	for _, want := range []string{"-ERR", "+OK message 1 deleted", "+OK", "+OK poptest signing off"} {
		if r := c.line(); !strings.HasPrefix(r, want) {
			t.Fatalf("got %q, want %q", r, want)
		}
	}
	c.eof()
	if len(srv.Messages("alice")) != 0 {
		t.Error("pipelined DELE not committed")
	}
	var names []string
	for _, cmd := range srv.Commands() {
		names = append(names, cmd.Name)
		if cmd.Conn != 1 {
			t.Errorf("Conn = %d", cmd.Conn)
		}
	}
	if want := []string{"USER", "PASS", "STAT", "LIST", "RETR", "BOGUS", "DELE", "NOOP", "QUIT"}; !slices.Equal(names, want) {
		t.Errorf("Commands = %q", names)
	}
}

func TestMalformedLines(t *testing.T) {
	srv := newAlice(t, nil)
	c, _ := dial(t, srv)
	c.fail(strings.Repeat("A", MaxLineLength+10), "-ERR line too long")
	c.send("CAPA\nCAPA") // a bare LF ends a line, which is refused
	if r := c.line(); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("bare LF: %q", r)
	}
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Errorf("CAPA after the refused line: %q", r)
	}
	c.lines()
	c.fail("USER al\rice", "-ERR")
	c.fail("USER al\x00ice", "-ERR")
	c.fail("", "-ERR")
	c.fail("NOOP", "-ERR") // not before login
	c.login("alice", "secret pass")
	c.fail("PASS x", "-ERR")

	// A line that never ends closes the connection.
	c2, _ := dial(t, srv)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 32; i++ {
			if _, err := c2.conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	c2.eof()
}

func TestNoUIDLAndNoTOP(t *testing.T) {
	srv := newAlice(t, &Config{NoUIDL: true, NoTOP: true})
	srv.AddMessage("alice", []byte("a\r\n\r\nb\r\n"))
	c, _ := dial(t, srv)
	c.ok("CAPA")
	for _, l := range c.lines() {
		if l == "UIDL" || l == "TOP" {
			t.Errorf("CAPA announces %s", l)
		}
	}
	c.login("alice", "secret pass")
	c.fail("UIDL", "-ERR")
	c.fail("UIDL 1", "-ERR")
	c.fail("TOP 1 0", "-ERR")
	c.ok("RETR 1")
	c.body()
}

func TestRenumberUIDs(t *testing.T) {
	srv := newAlice(t, nil)
	srv.SetMessages("alice", [][]byte{[]byte("a\r\n"), []byte("b\r\n")})
	old := srv.UIDs("alice")

	c, _ := dial(t, srv)
	c.login("alice", "secret pass")
	srv.RenumberUIDs("alice")
	fresh := srv.UIDs("alice")
	for _, u := range fresh {
		if slices.Contains(old, u) {
			t.Errorf("UID %q reused after renumbering (old %q, new %q)", u, old, fresh)
		}
		if !validUID(u) {
			t.Errorf("invalid UID %q", u)
		}
	}
	// The session keeps the UIDLs it saw at login...
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + old[0], "2 " + old[1]}; !slices.Equal(got, want) {
		t.Errorf("UIDL in the old session = %q, want %q", got, want)
	}
	// ...and its deletions still hit the same messages.
	c.ok("DELE 1")
	c.ok("QUIT")
	if got := srv.UIDs("alice"); !slices.Equal(got, fresh[1:]) {
		t.Errorf("after QUIT: %q, want %q", got, fresh[1:])
	}
	c, _ = dial(t, srv)
	c.login("alice", "secret pass")
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + fresh[1]}; !slices.Equal(got, want) {
		t.Errorf("UIDL in a new session = %q, want %q", got, want)
	}
}

func TestAddMessageUID(t *testing.T) {
	srv := newAlice(t, nil)
	srv.AddMessageUID("alice", "Same~UID!", []byte("a\r\n"))
	srv.AddMessageUID("alice", "Same~UID!", []byte("b\r\n"))
	if got := srv.UIDs("alice"); !slices.Equal(got, []string{"Same~UID!", "Same~UID!"}) {
		t.Errorf("UIDs = %q", got)
	}
	for _, bad := range []string{"", "a b", "é", strings.Repeat("x", 71), "a\r\n"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddMessageUID(%q) did not panic", bad)
				}
			}()
			srv.AddMessageUID("alice", bad, nil)
		}()
	}
}

func TestMessagesAreCopies(t *testing.T) {
	srv := newAlice(t, nil)
	raw := []byte("abc\r\n")
	srv.AddMessage("alice", raw)
	raw[0] = 'X'
	got := srv.Messages("alice")
	got[0][1] = 'Y'
	if string(srv.Messages("alice")[0]) != "abc\r\n" {
		t.Error("the stored message changed through a caller's slice")
	}
}

// faultOn returns a fault hook that applies f to the named command.
func faultOn(name string, f Fault) func(Command) Fault {
	return func(c Command) Fault {
		if c.Name == name {
			return f
		}
		return Fault{}
	}
}

func TestFaults(t *testing.T) {
	body := []byte("Subject: big\r\n\r\n" + strings.Repeat("line of text\r\n", 1000))
	setup := func(t *testing.T, f func(Command) Fault) (*Server, *client) {
		srv := newAlice(t, &Config{Fault: f})
		srv.SetMessages("alice", [][]byte{body, []byte("x\r\n")})
		c, _ := dial(t, srv)
		c.login("alice", "secret pass")
		return srv, c
	}

	t.Run("Drop", func(t *testing.T) {
		srv, c := setup(t, faultOn("DELE", Fault{Drop: true}))
		c.send("DELE 1")
		c.eof()
		srv.WaitIdle(t.Context())
		if len(srv.Messages("alice")) != 2 {
			t.Error("messages lost")
		}
	})
	t.Run("DropQUITBeforeCommit", func(t *testing.T) {
		srv, c := setup(t, faultOn("QUIT", Fault{Drop: true}))
		c.ok("DELE 1")
		c.send("QUIT")
		c.eof()
		srv.WaitIdle(t.Context())
		if len(srv.Messages("alice")) != 2 {
			t.Error("QUIT executed despite Drop")
		}
	})
	t.Run("DropAfterExecQUIT", func(t *testing.T) {
		srv, c := setup(t, faultOn("QUIT", Fault{DropAfterExec: true}))
		c.ok("DELE 1")
		c.send("QUIT")
		c.eof() // the client never sees +OK...
		if got := srv.Messages("alice"); len(got) != 1 || string(got[0]) != "x\r\n" {
			t.Errorf("...but the commit happened: %q", got) // visible as soon as the close is
		}
	})
	t.Run("DropAfterBytesRETR", func(t *testing.T) {
		const n = 1000
		_, c := setup(t, faultOn("RETR", Fault{DropAfterBytes: n}))
		c.send("RETR 1")
		got, err := io.ReadAll(c.r)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("+OK %d octets\r\n%s", len(body), body)[:n]
		if string(got) != want {
			t.Errorf("got %d bytes %q..., want the first %d of the reply", len(got), got[:min(len(got), 40)], n)
		}
	})
	t.Run("DropAfterBytesStatusLine", func(t *testing.T) {
		_, c := setup(t, faultOn("STAT", Fault{DropAfterBytes: 3}))
		c.send("STAT")
		got, _ := io.ReadAll(c.r)
		if string(got) != "+OK" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("Err", func(t *testing.T) {
		srv, c := setup(t, faultOn("DELE", Fault{Err: "[SYS/TEMP] try later"}))
		c.fail("DELE 1", "-ERR [SYS/TEMP] try later")
		c.ok("QUIT") // DELE was not executed
		if len(srv.Messages("alice")) != 2 {
			t.Error("DELE executed despite Err")
		}
	})
	t.Run("ErrQUIT", func(t *testing.T) {
		srv, c := setup(t, faultOn("QUIT", Fault{Err: "some deleted messages not removed"}))
		c.ok("DELE 1")
		c.fail("QUIT", "-ERR some deleted messages not removed")
		c.eof()
		srv.WaitIdle(t.Context())
		if len(srv.Messages("alice")) != 2 {
			t.Error("QUIT committed despite Err")
		}
	})
	t.Run("Reply", func(t *testing.T) {
		_, c := setup(t, faultOn("LIST", Fault{Reply: "+OK\r\n1 999999\r\n2 1\r\n3 1\r\n.\r\n"}))
		c.ok("LIST")
		if got := c.lines(); !slices.Equal(got, []string{"1 999999", "2 1", "3 1"}) {
			t.Errorf("lying LIST = %q", got)
		}
		c.ok("STAT") // the session goes on
	})
	t.Run("ReplyUnterminated", func(t *testing.T) {
		srv, c := setup(t, faultOn("RETR", Fault{Reply: "+OK\r\nfirst\r\n"}))
		c.ok("RETR 1")
		if l := c.line(); l != "first" {
			t.Errorf("got %q", l)
		}
		// The server waits for the next command; the client would hang.
		srv.CloseClientConnections()
		c.eof()
	})
	t.Run("DropAfterBytesWithReply", func(t *testing.T) {
		_, c := setup(t, faultOn("NOOP", Fault{Reply: "+OK hello\r\n", DropAfterBytes: 5}))
		c.send("NOOP")
		got, _ := io.ReadAll(c.r)
		if string(got) != "+OK h" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("AUTHDropAfterExec", func(t *testing.T) {
		srv := newAlice(t, &Config{Fault: faultOn("AUTH", Fault{DropAfterExec: true}), LockWait: -1})
		c, _ := dial(t, srv)
		c.send("AUTH PLAIN")
		if r := c.line(); r != "+ " {
			t.Fatalf("continuation %q", r)
		}
		c.send(b64("\x00alice\x00secret pass"))
		c.eof()
		srv.WaitIdle(t.Context())
		srv.SetFault(nil)
		c, _ = dial(t, srv) // the lock was released
		c.ok("AUTH PLAIN " + b64("\x00alice\x00secret pass"))
	})
	t.Run("Seq", func(t *testing.T) {
		var mu sync.Mutex
		var seen []Command
		srv, c := setup(t, func(cmd Command) Fault {
			mu.Lock()
			seen = append(seen, cmd)
			mu.Unlock()
			if cmd.Seq == 4 {
				return Fault{Err: "fourth"}
			}
			return Fault{}
		})
		c.ok("STAT")
		c.fail("STAT", "-ERR fourth")
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 5 || seen[0].Seq != 0 || seen[0].Name != "" || seen[4].Seq != 4 || seen[4].User != "alice" {
			t.Errorf("hook saw %+v", seen)
		}
		if seen[2].Args[0] != redacted {
			t.Errorf("the hook saw the password")
		}
		srv.SetFault(nil)
		c.ok("STAT")
	})
}

func TestGreetingFaults(t *testing.T) {
	srv := newAlice(t, nil)
	dialRaw := func() *client {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return newClient(t, conn)
	}
	greeting := func(f Fault) func(Command) Fault {
		return func(c Command) Fault {
			if c.Seq == 0 {
				return f
			}
			return Fault{}
		}
	}
	srv.SetFault(greeting(Fault{Err: "[SYS/TEMP] too busy"}))
	c := dialRaw()
	if l := c.line(); l != "-ERR [SYS/TEMP] too busy" {
		t.Errorf("greeting %q", l)
	}
	c.eof()

	srv.SetFault(greeting(Fault{Drop: true}))
	dialRaw().eof()

	srv.SetFault(greeting(Fault{Reply: "garbage\r\n"}))
	c = dialRaw()
	if l := c.line(); l != "garbage" {
		t.Errorf("greeting %q", l)
	}
	c.login("alice", "secret pass")

	srv.SetFault(greeting(Fault{DropAfterBytes: 4}))
	c = dialRaw()
	if b, _ := io.ReadAll(c.r); string(b) != "+OK " {
		t.Errorf("greeting %q", b)
	}
}

// TestStall uses testing/synctest and net.Pipe: the stalls take no real
// time.
func TestStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := NewUnstartedServer(&Config{Fault: faultOn("STAT", Fault{Stall: time.Hour})})
		srv.AddUser("alice", "pw")
		cc, sc := net.Pipe()
		go srv.ServeConn(sc)
		c := newClient(t, cc)
		c.line()
		c.login("alice", "pw")
		start := time.Now()
		c.ok("STAT")
		if d := time.Since(start); d != time.Hour {
			t.Errorf("STAT took %v, want 1h", d)
		}

		// A stall ends when the server closes.
		c.send("STAT")
		synctest.Wait() // the server is now stalled
		srv.Close()
		c.eof()
		if d := time.Since(start); d != time.Hour {
			t.Errorf("Close waited for the stall: %v", d)
		}
	})
}

func TestStallGreetingRealTime(t *testing.T) {
	srv := NewServer(t, &Config{Fault: func(c Command) Fault {
		if c.Seq == 0 {
			return Fault{Stall: 50 * time.Millisecond}
		}
		return Fault{}
	}})
	start := time.Now()
	dial(t, srv)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("greeting came after %v, before the stall ended", d)
	}
}

func TestServeConnAndClose(t *testing.T) {
	srv := NewUnstartedServer(nil)
	srv.AddUser("alice", "pw")
	srv.AddMessage("alice", []byte("m\r\n"))
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		srv.ServeConn(sc)
		close(done)
	}()
	c := newClient(t, cc)
	c.line()
	c.login("alice", "pw")
	c.ok("DELE 1")
	srv.Close() // closes the session, commits nothing, waits
	<-done
	c.eof()
	if len(srv.Messages("alice")) != 1 {
		t.Error("Close committed a session")
	}
	srv.Close() // idempotent

	// ServeConn on a closed server closes the connection.
	cc, sc = net.Pipe()
	srv.ServeConn(sc)
	if _, err := cc.Read(make([]byte, 1)); err == nil {
		t.Error("connection open after ServeConn on a closed server")
	}
	defer func() {
		if recover() == nil {
			t.Error("Start after Close did not panic")
		}
	}()
	srv.Start()
}

func TestServeConnTLS(t *testing.T) {
	srv := NewUnstartedServer(nil)
	defer srv.Close()
	srv.AddUser("alice", "pw")
	cc, sc := net.Pipe()
	go srv.ServeConn(tls.Server(sc, srv.tlsConfig))
	c := newClient(t, tls.Client(cc, srv.ClientTLSConfig()))
	c.line()
	c.ok("CAPA")
	if slices.Contains(c.lines(), "STLS") {
		t.Error("STLS offered on a *tls.Conn")
	}
	c.login("alice", "pw")
}

func TestConcurrentSessions(t *testing.T) {
	srv := NewServer(t, &Config{Fault: func(Command) Fault { return Fault{} }, LockWait: time.Minute})
	const users, rounds = 8, 5
	for u := range users {
		name := fmt.Sprintf("user%d", u)
		srv.AddUser(name, "pw")
		for i := range rounds {
			srv.AddMessage(name, []byte(fmt.Sprintf("message %d\r\n", i)))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, users*rounds)
	for u := range users {
		name := fmt.Sprintf("user%d", u)
		for range rounds {
			wg.Go(func() {
				conn, err := net.Dial("tcp", srv.Addr)
				if err != nil {
					errs <- err
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				r := bufio.NewReader(conn)
				io.WriteString(conn, "USER "+name+"\r\nPASS pw\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n")
				all, _ := io.ReadAll(r)
				if !bytes.Contains(all, []byte("signing off (1 messages deleted)")) {
					errs <- fmt.Errorf("%s: %q", name, all)
				}
				srv.Messages(name)
				srv.Commands()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for u := range users {
		total += len(srv.Messages(fmt.Sprintf("user%d", u)))
	}
	if total != 0 {
		t.Errorf("%d messages left, want 0 (every login waits for the lock)", total)
	}
}
