package pop_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
)

// step is one exchange of a scripted server: it reads a line that must
// match expect (a prefix; "" reads nothing), then sends send.
type step struct {
	expect string
	send   string
}

// scripted returns Options whose DialContext connects to a server that plays
// steps over net.Pipe and reports a mismatch through t.
func scripted(t *testing.T, steps []step) *pop.Options {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	client, server := net.Pipe()
	go func() {
		defer close(done)
		defer server.Close()
		br := bufio.NewReader(server)
		for i, s := range steps {
			if s.expect != "" {
				_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := br.ReadString('\n')
				if err != nil {
					t.Errorf("step %d: reading %q: %v", i, s.expect, err)
					return
				}
				if !strings.HasSuffix(line, "\r\n") || !strings.HasPrefix(line, s.expect) {
					t.Errorf("step %d: got %q, want %q...", i, line, s.expect)
					return
				}
			}
			if _, err := server.Write([]byte(s.send)); err != nil {
				t.Errorf("step %d: writing: %v", i, err)
				return
			}
		}
		// Wait for the client to hang up.
		_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = br.ReadString(0)
	}()
	used := false
	return &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: user, Password: password},
			Security: mailaccess.SecurityInsecureCleartext,
			Timeout:  5 * time.Second,
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				if used {
					t.Error("dialed twice")
				}
				used = true
				return client, nil
			},
		},
	}
}

var greetingAndCAPA = []step{
	{"", "+OK ready\r\n"},
	{"CAPA", "+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n"},
}

func TestSASLBareContinuationAndDeferredInitialResponse(t *testing.T) {
	long := strings.Repeat("p", 300) // the initial response cannot go into the AUTH line
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + long))
	o := scripted(t, append(greetingAndCAPA,
		step{"AUTH PLAIN\r\n", "+\r\n"},
		step{ir + "\r\n", "+OK logged in\r\n"},
		step{"CAPA", "+OK\r\nUIDL\r\nEXPIRE 0\r\n.\r\n"},
		step{"QUIT", "+OK bye\r\n"},
	))
	o.Auth.Password = long
	mb, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	if err != nil {
		t.Fatal(err)
	}
	if !mb.Describe().DeletesOnRetrieval {
		t.Error("EXPIRE 0 after login not seen")
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSASLInitialResponseInLine(t *testing.T) {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	o := scripted(t, append(greetingAndCAPA,
		step{"AUTH PLAIN " + ir + "\r\n", "+OK\r\n"},
		step{"CAPA", "-ERR not now\r\n"},
	))
	mb, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	if err != nil {
		t.Fatal(err)
	}
	// A -ERR to CAPA after login keeps the capabilities from before.
	if caps := mb.Capabilities(); len(caps) != 2 || caps[0] != "SASL PLAIN" {
		t.Errorf("capabilities %v", caps)
	}
	mb.Abort()
}

func TestSASLBadChallengeCancels(t *testing.T) {
	o := scripted(t, append(greetingAndCAPA,
		step{"AUTH PLAIN ", "+ this is not base64!\r\n"},
		step{"*\r\n", "-ERR cancelled\r\n"},
	))
	_, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	wantKind(t, err, mailaccess.ErrProtocol)
}

func TestSASLCancelAccepted(t *testing.T) {
	// A server that answers +OK to a cancelled exchange is not trusted.
	o := scripted(t, append(greetingAndCAPA,
		step{"AUTH PLAIN", "+ !!!\r\n"},
		step{"*\r\n", "+OK whatever\r\n"},
	))
	_, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	wantKind(t, err, mailaccess.ErrProtocol)
}

func TestSASLGarbageAnswer(t *testing.T) {
	o := scripted(t, append(greetingAndCAPA,
		step{"AUTH PLAIN", "* what\r\n"},
	))
	_, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	wantKind(t, err, mailaccess.ErrProtocol)
}

func TestNameIPv6AndCase(t *testing.T) {
	o := scripted(t, []step{
		{"", "+OK\r\n"},
		{"CAPA", "-ERR\r\n"},
		{"USER alice", "+OK\r\n"},
		{"PASS ", "+OK\r\n"},
		{"UIDL", "+OK\r\n.\r\n"},
		{"LIST", "+OK\r\n.\r\n"},
	})
	o.Auth.Username = "alice:x@corp"
	mb, err := pop.Dial(t.Context(), "[2001:DB8::1]:110", o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	if got, want := mb.Name(), "pop3://alice%3Ax%40corp@[2001:db8::1]"; got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
	o = scripted(t, []step{
		{"", "+OK\r\n"},
		{"CAPA", "-ERR\r\n"},
		{"USER alice", "+OK\r\n"},
		{"PASS ", "+OK\r\n"},
		{"UIDL", "+OK\r\n.\r\n"},
		{"LIST", "+OK\r\n.\r\n"},
	})
	mb2, err := pop.Dial(t.Context(), "POP.Example.COM:995", o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb2.Abort()
	if got, want := mb2.Name(), "pop3://alice@pop.example.com"; got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
}

func TestInvalidAddress(t *testing.T) {
	for _, addr := range []string{"pop.example.com", ":110", "pop.example.com:", "a\r\nb:110"} {
		_, err := pop.Dial(t.Context(), addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}}})
		wantKind(t, err, mailaccess.ErrInvalidArgument)
	}
}

func TestExpireZeroBeforeLoginOnly(t *testing.T) {
	// "EXPIRE 0 USER" before login, and no CAPA after login: the value may
	// be 0 for this user, so it counts as 0.
	o := scripted(t, []step{
		{"", "+OK\r\n"},
		{"CAPA", "+OK\r\nUSER\r\nUIDL\r\nEXPIRE 0 USER\r\n.\r\n"},
		{"USER alice", "+OK\r\n"},
		{"PASS ", "+OK\r\n"},
		{"CAPA", "-ERR\r\n"},
	})
	mb, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	if !mb.Describe().DeletesOnRetrieval {
		t.Fatal("EXPIRE 0 USER not taken as 0")
	}
}

func TestExpireAfterLoginWins(t *testing.T) {
	o := scripted(t, []step{
		{"", "+OK\r\n"},
		{"CAPA", "+OK\r\nUSER\r\nUIDL\r\nEXPIRE 0 USER\r\n.\r\n"},
		{"USER alice", "+OK\r\n"},
		{"PASS ", "+OK\r\n"},
		{"CAPA", "+OK\r\nUIDL\r\nEXPIRE NEVER\r\n.\r\n"},
	})
	mb, err := pop.Dial(t.Context(), "pop.example.com:110", o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	if mb.Describe().DeletesOnRetrieval {
		t.Fatal("EXPIRE NEVER after login ignored")
	}
}
