package xoauth2

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/pop/poptest"
)

func TestStart(t *testing.T) {
	mech, ir, err := NewClient("alice@example.com", "ya29.tok-en").Start()
	if err != nil {
		t.Fatal(err)
	}
	if mech != "XOAUTH2" {
		t.Errorf("mechanism %q", mech)
	}
	if want := "user=alice@example.com\x01auth=Bearer ya29.tok-en\x01\x01"; string(ir) != want {
		t.Errorf("initial response %q, want %q", ir, want)
	}
}

func TestStartRejects(t *testing.T) {
	const secret = "s3cret-token"
	for _, c := range []struct{ name, user, token string }{
		{"empty token", "alice", ""},
		{"empty user", "", secret},
		{"^A in user", "al\x01ice", secret},
		{"CR in user", "alice\r", secret},
		{"LF in user", "alice\nPASS x", secret},
		{"NUL in user", "ali\x00ce", secret},
		{"^A in token", "alice", secret + "\x01auth=Bearer other"},
		{"CR in token", "alice", secret + "\r"},
		{"LF in token", "alice", secret + "\n"},
		{"NUL in token", "alice", "\x00" + secret},
	} {
		mech, ir, err := NewClient(c.user, c.token).Start()
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", c.name, err)
		}
		if mech != "" || ir != nil {
			t.Errorf("%s: Start returned %q, %q with an error", c.name, mech, ir)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error holds the token: %v", c.name, err)
		}
	}
}

func TestNextRecordsFailure(t *testing.T) {
	c := NewClient("alice", "tok")
	if c.Failure() != nil {
		t.Fatal("Failure before any challenge")
	}
	resp, err := c.Next([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || len(resp) != 0 {
		t.Errorf("response %q, want an empty non-nil one", resp)
	}
	f := c.Failure()
	want := Failure{Status: "401", Schemes: "bearer", Scope: "https://mail.google.com/"}
	if f == nil || *f != want {
		t.Fatalf("Failure = %+v, want %+v", f, want)
	}
	if !f.InvalidToken() {
		t.Error("status 401 is not InvalidToken")
	}
	if got, want := f.Error(), `XOAUTH2 refused: status 401, schemes "bearer", scope "https://mail.google.com/"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// There is no second challenge in XOAUTH2.
	if _, err := c.Next([]byte(`{}`)); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
		t.Errorf("second challenge: %v, want ErrUnexpectedServerChallenge", err)
	}
	if *c.Failure() != want {
		t.Error("second challenge changed the recorded failure")
	}
}

func TestParseFailure(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, c := range []struct {
		in      string
		want    Failure
		invalid bool
	}{
		{`{"status":"401","schemes":"bearer","scope":"mail"}`, Failure{Status: "401", Schemes: "bearer", Scope: "mail"}, true},
		{`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`, Failure{Status: "400", Schemes: "Bearer", Scope: "https://mail.google.com/"}, true},
		{`{"status":401}`, Failure{Status: "401"}, true},
		{`{"status":"invalid_token","schemes":"bearer"}`, Failure{Status: "invalid_token", Schemes: "bearer"}, true},
		{`{"status":"403","scope":"mail"}`, Failure{Status: "403", Scope: "mail"}, false},
		{`{"status":"insufficient_scope"}`, Failure{Status: "insufficient_scope"}, false},
		{`{}`, Failure{}, false},
		{`{"status":null}`, Failure{}, false},
		{`{"status":["401"]}`, Failure{}, false},
		{`{"status":"40\r\n1\u001b[2J","scope":"a` + "\x7f" + `b"}`, Failure{Status: "40  1 [2J", Scope: "a b"}, false},
		{`not json`, Failure{Malformed: true}, false},
		{``, Failure{Malformed: true}, false},
		{`"401"`, Failure{Malformed: true}, false},
	} {
		f := ParseFailure([]byte(c.in))
		if *f != c.want {
			t.Errorf("ParseFailure(%q) = %+v, want %+v", c.in, *f, c.want)
		}
		if f.InvalidToken() != c.invalid {
			t.Errorf("ParseFailure(%q).InvalidToken() = %v", c.in, !c.invalid)
		}
		if strings.ContainsAny(f.Error(), "\r\n\x1b") {
			t.Errorf("Error() of %q holds control characters: %q", c.in, f.Error())
		}
	}
	f := ParseFailure([]byte(`{"status":"` + long + `","scope":"` + long + `"}`))
	if len(f.Status) > 260 || len(f.Scope) > 260 {
		t.Errorf("long fields kept: %d, %d bytes", len(f.Status), len(f.Scope))
	}
	if ParseFailure([]byte(`x`)).Error() != "XOAUTH2 refused (the error challenge is not JSON)" {
		t.Error("Error() of a malformed challenge")
	}
	if ParseFailure([]byte(`{}`)).Error() != "XOAUTH2 refused" {
		t.Error("Error() of an empty document")
	}
	var nilFailure *Failure
	if nilFailure.InvalidToken() {
		t.Error("nil Failure is InvalidToken")
	}
}

// TestIMAPExchange runs the client through go-imap's Authenticate against
// imaptest's XOAUTH2 server: a good token logs in, a refused one ends in NO
// with the server's challenge recorded.
func TestIMAPExchange(t *testing.T) {
	srv := imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{"good-token": "alice"}})
	srv.AddUser("alice", "pw")

	login := func(token string) (*Client, error) {
		c, err := imapclient.DialTLS(srv.Addr, &imapclient.Options{TLSConfig: srv.ClientTLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		x := NewClient("alice", token)
		return x, c.Authenticate(x)
	}

	x, err := login("good-token")
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	if x.Failure() != nil {
		t.Errorf("Failure after a successful login: %+v", x.Failure())
	}

	x, err = login("expired-token")
	if err == nil {
		t.Fatal("a refused token logged in")
	}
	if strings.Contains(err.Error(), "expired-token") {
		t.Errorf("error holds the token: %v", err)
	}
	if f := x.Failure(); f == nil || f.Status == "" || !f.InvalidToken() {
		t.Errorf("Failure = %+v, want the server's status", f)
	}
}

// TestPOP3Exchange runs the client by hand against poptest, in both forms
// of RFC 5034 AUTH: with the initial response on the AUTH line, and with
// the AUTH line alone and the response after the server's empty challenge
// (the form Microsoft 365 uses).
func TestPOP3Exchange(t *testing.T) {
	srv := poptest.NewServer(t, &poptest.Config{SASL: []string{"XOAUTH2"}, Tokens: map[string]string{"good-token": "alice"}})
	srv.AddUser("alice", "pw")

	// auth runs one exchange and returns the server's final line.
	auth := func(token string, twoLines bool) (string, *Client) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(conn)
		read := func() string {
			t.Helper()
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			return strings.TrimRight(l, "\r\n")
		}
		write := func(s string) {
			t.Helper()
			if _, err := conn.Write([]byte(s + "\r\n")); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		if g := read(); !strings.HasPrefix(g, "+OK") {
			t.Fatalf("greeting %q", g)
		}
		x := NewClient("alice", token)
		mech, ir, err := x.Start()
		if err != nil {
			t.Fatal(err)
		}
		enc := base64.StdEncoding.EncodeToString(ir)
		if twoLines {
			write("AUTH " + mech)
			if l := read(); l != "+ " && l != "+" {
				t.Fatalf("answer to AUTH without response: %q", l)
			}
			write(enc)
		} else {
			write("AUTH " + mech + " " + enc)
		}
		for {
			l := read()
			if !strings.HasPrefix(l, "+ ") {
				return l, x
			}
			chal, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
			if err != nil {
				t.Fatalf("challenge %q: %v", l, err)
			}
			resp, err := x.Next(chal)
			if err != nil {
				write("*")
				continue
			}
			write(base64.StdEncoding.EncodeToString(resp))
		}
	}

	for _, twoLines := range []bool{false, true} {
		if l, x := auth("good-token", twoLines); !strings.HasPrefix(l, "+OK") || x.Failure() != nil {
			t.Errorf("good token (two lines %v): %q, failure %+v", twoLines, l, x.Failure())
		}
		l, x := auth("revoked-token", twoLines)
		if !strings.HasPrefix(l, "-ERR") {
			t.Errorf("revoked token (two lines %v): %q", twoLines, l)
		}
		if f := x.Failure(); f == nil || f.Status != "401" || !f.InvalidToken() {
			t.Errorf("revoked token (two lines %v): Failure %+v", twoLines, f)
		}
	}
}
