package imap_test

import (
	"bytes"
	"context"
	"crypto/tls"
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

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

const (
	user     = "alice"
	password = "correct horse battery staple"
)

// newServer starts a cleartext server (with STARTTLS) holding user.
func newServer(t *testing.T, cfg *imaptest.Config) *imaptest.Server {
	t.Helper()
	s := imaptest.NewServer(t, cfg)
	s.AddUser(user, password)
	return s
}

// options returns Options for s over STARTTLS with verification.
func options(s *imaptest.Server) *imap.Options {
	return &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: password},
			Security:  mailaccess.SecurityStartTLS,
			TLSConfig: s.ClientTLSConfig(),
			Timeout:   10 * time.Second,
		},
	}
}

func dial(t *testing.T, s *imaptest.Server, o *imap.Options) *imap.Mailbox {
	t.Helper()
	if o == nil {
		o = options(s)
	}
	mb, err := imap.Dial(t.Context(), s.Addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { mb.Abort() })
	return mb
}

// message returns a CRLF message of about size bytes whose bytes depend on
// n, so that a mix-up shows.
func message(n, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender%d@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@example.com>\r\n\r\n", n, n, n)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %d of message %d: %s\r\n", i, n, strings.Repeat(string(rune('a'+(i+n)%26)), i%60))
	}
	return b.Bytes()
}

func readAll(t *testing.T, mb *imap.Mailbox, uid mailaccess.UID) []byte {
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

// names returns the names of the commands s received.
func names(s *imaptest.Server) []string {
	var out []string
	for _, c := range s.Commands() {
		out = append(out, c.Name)
	}
	return out
}

func uids(list []mailaccess.MessageInfo) []mailaccess.UID {
	var out []mailaccess.UID
	for _, m := range list {
		out = append(out, m.UID)
	}
	return out
}

func TestImplicitTLSVerified(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	s.Append(user, "INBOX", message(1, 100))

	cfg := s.ClientTLSConfig()
	cfg.ServerName = "" // filled in from the address
	mb := dial(t, s, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: password},
			TLSConfig: cfg,
		},
	})
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The system roots do not know the test certificate.
	_, err = imap.Dial(t.Context(), s.Addr, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth: mailaccess.Auth{Username: user, Password: password},
		},
	})
	if !errors.Is(err, mailaccess.ErrTLS) {
		t.Fatalf("Dial with system roots = %v, want ErrTLS", err)
	}
	// Nor is the certificate valid for another name.
	cfg = s.ClientTLSConfig()
	cfg.ServerName = "mail.example.com"
	_, err = imap.Dial(t.Context(), s.Addr, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: password},
			TLSConfig: cfg,
		},
	})
	if !errors.Is(err, mailaccess.ErrTLS) {
		t.Fatalf("Dial with a wrong server name = %v, want ErrTLS", err)
	}
	// A TLS client on a cleartext port fails the handshake.
	plain := newServer(t, nil)
	_, err = imap.Dial(t.Context(), plain.Addr, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: password},
			TLSConfig: plain.ClientTLSConfig(),
			Timeout:   2 * time.Second,
		},
	})
	if !errors.Is(err, mailaccess.ErrTLS) && !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Dial TLS to a cleartext port = %v, want ErrTLS or ErrConnection", err)
	}
}

func TestStartTLSRequired(t *testing.T) {
	s := newServer(t, nil)
	mb := dial(t, s, nil)
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := names(s)
	if len(got) < 2 || got[0] != "STARTTLS" {
		t.Fatalf("commands = %v, want STARTTLS first", got)
	}

	s = newServer(t, &imaptest.Config{NoStartTLS: true})
	_, err := imap.Dial(t.Context(), s.Addr, options(s))
	if !errors.Is(err, mailaccess.ErrTLS) {
		t.Fatalf("Dial without STARTTLS = %v, want ErrTLS", err)
	}
	for _, n := range names(s) {
		if n == "LOGIN" || n == "AUTHENTICATE" {
			t.Fatalf("credentials were sent in cleartext: %v", names(s))
		}
	}
}

func TestLoginMechanisms(t *testing.T) {
	for _, tc := range []struct {
		mech string
		want string
	}{
		{"", "AUTHENTICATE PLAIN [redacted]"},
		{"PLAIN", "AUTHENTICATE PLAIN [redacted]"},
		{"plain", "AUTHENTICATE PLAIN [redacted]"},
		{"LOGIN", "LOGIN [redacted]"},
	} {
		t.Run("mech="+tc.mech, func(t *testing.T) {
			s := newServer(t, nil)
			o := options(s)
			o.Auth.Mechanism = tc.mech
			mb := dial(t, s, o)
			if err := mb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, c := range s.Commands() {
				_, rest, _ := strings.Cut(c.Line, " ")
				lines = append(lines, rest)
			}
			if !slices.Contains(lines, tc.want) {
				t.Fatalf("commands = %q, want %q", lines, tc.want)
			}
		})
	}
}

func TestLoginDisabledOverCleartext(t *testing.T) {
	s := newServer(t, &imaptest.Config{RequireTLSForAuth: true})
	o := options(s)
	o.Security = mailaccess.SecurityInsecureCleartext
	_, err := imap.Dial(t.Context(), s.Addr, o)
	if !errors.Is(err, mailaccess.ErrAuth) {
		t.Fatalf("Dial = %v, want ErrAuth", err)
	}
	if got := names(s); slices.Contains(got, "LOGIN") {
		t.Fatalf("LOGIN sent although LOGINDISABLED: %v", got)
	}
}

func TestOAuth(t *testing.T) {
	const token = "ya29.secret-token-value"
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER", ""} {
		t.Run("mech="+mech, func(t *testing.T) {
			s := newServer(t, &imaptest.Config{Tokens: map[string]string{token: user}})
			o := options(s)
			o.Auth = mailaccess.Auth{Username: user, Mechanism: mech, Token: func(context.Context) (string, error) { return token, nil }}
			mb := dial(t, s, o)
			if _, err := mb.List(t.Context()); err != nil {
				t.Fatal(err)
			}

			o.Auth.Token = func(context.Context) (string, error) { return "wrong-" + token, nil }
			_, err := imap.Dial(t.Context(), s.Addr, o)
			if !errors.Is(err, mailaccess.ErrAuth) {
				t.Fatalf("Dial with a wrong token = %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("the error holds the token: %v", err)
			}
		})
	}
}

// TestTokenSourceFails: the token source's failure is ErrAuth, or the
// kind of the source's own *mailaccess.Error (temporary exactly when that
// is), and no command is sent with a bad token.
func TestTokenSourceFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		token     func(context.Context) (string, error)
		kind      error
		temporary bool
	}{
		{"permanent", func(context.Context) (string, error) { return "", errors.New("refresh token revoked") }, mailaccess.ErrAuth, false},
		{"temporary", func(context.Context) (string, error) {
			return "", &mailaccess.Error{Kind: mailaccess.ErrConnection, Err: errors.New("token endpoint unreachable")}
		}, mailaccess.ErrConnection, true},
		{"unavailable", func(context.Context) (string, error) {
			return "", &mailaccess.Error{Kind: mailaccess.ErrUnavailable, Err: errors.New("token endpoint busy")}
		}, mailaccess.ErrUnavailable, true},
		{"empty", func(context.Context) (string, error) { return "", nil }, mailaccess.ErrAuth, false},
		{"control characters", func(context.Context) (string, error) { return "tok\r\nA1 LOGOUT", nil }, mailaccess.ErrInvalidArgument, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, nil)
			o := options(s)
			o.Auth = mailaccess.Auth{Username: user, Mechanism: "XOAUTH2", Token: tc.token}
			_, err := imap.Dial(t.Context(), s.Addr, o)
			if !errors.Is(err, tc.kind) || mailaccess.IsTemporary(err) != tc.temporary {
				t.Fatalf("Dial = %v (temporary %v), want %v, temporary %v", err, mailaccess.IsTemporary(err), tc.kind, tc.temporary)
			}
			for _, c := range names(s) {
				if c == "AUTHENTICATE" || c == "LOGIN" {
					t.Fatalf("sent %s without a usable token", c)
				}
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	for _, mech := range []string{"", "LOGIN"} {
		s := newServer(t, nil)
		o := options(s)
		o.Auth.Mechanism = mech
		o.Auth.Password = "wrong password 12345"
		_, err := imap.Dial(t.Context(), s.Addr, o)
		if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) {
			t.Fatalf("mech %q: Dial = %v, want a permanent ErrAuth", mech, err)
		}
		if strings.Contains(err.Error(), "12345") || strings.Contains(fmt.Sprintf("%#v", err), "12345") {
			t.Fatalf("mech %q: the error holds the password: %v", mech, err)
		}
	}
}

func TestInvalidArgumentsRefusedBeforeSending(t *testing.T) {
	s := newServer(t, nil)
	for _, o := range []*imap.Options{
		{Folder: "INBOX\r\nA1 DELETE INBOX"},
		{Folder: "IN\x00BOX"},
		{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: "alice\r\nA1 LOGOUT", Password: password}}},
		{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: "pw\nA1 LOGOUT"}}},
	} {
		full := options(s)
		if o.Folder != "" {
			full.Folder = o.Folder
		}
		if o.Auth.Username != "" {
			full.Auth = o.Auth
		}
		_, err := imap.Dial(t.Context(), s.Addr, full)
		if !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Fatalf("Dial(%+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
	if got := names(s); len(got) != 0 {
		t.Fatalf("commands were sent: %v", got)
	}

	mb := dial(t, s, nil)
	s.Append(user, "INBOX", message(1, 100))
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.Commands())
	err = mb.Move(t.Context(), "Archive\r\nA1 EXPUNGE", list[0].UID)
	if !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("Move = %v, want ErrInvalidArgument", err)
	}
	if after := len(s.Commands()); after != before {
		t.Fatalf("Move sent commands: %v", names(s)[before:])
	}
}

func TestSelectMissingFolder(t *testing.T) {
	s := newServer(t, nil)
	o := options(s)
	o.Folder = "Nope"
	_, err := imap.Dial(t.Context(), s.Addr, o)
	if !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Dial = %v, want ErrNotFound", err)
	}
}

func TestListOpenByteExact(t *testing.T) {
	s := newServer(t, nil)
	const chunk = 1000
	date := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	raws := [][]byte{
		message(1, 10),
		message(2, chunk-1),
		message(3, chunk),   // exactly one chunk
		message(4, 2*chunk), // exactly two chunks
		message(5, 7*chunk+123),
		[]byte("Subject: bare LF\n\nline one\nline two\n"),
		[]byte("Subject: no final newline\r\n\r\nend"),
	}
	for i := range raws {
		if i == 2 || i == 3 { // make the size a multiple of the chunk
			raws[i] = raws[i][:((i - 1) * chunk)]
		}
		s.AppendMessage(user, "INBOX", raws[i], nil, date)
	}
	o := options(s)
	o.ChunkSize = chunk
	o.ListDates = true
	mb := dial(t, s, o)

	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(raws) {
		t.Fatalf("List gave %d messages, want %d", len(list), len(raws))
	}
	epoch := mb.Describe().UIDEpoch
	for i, info := range list {
		if want := mailaccess.UID(fmt.Sprintf("%s/%d", epoch, s.UIDs(user, "INBOX")[i])); info.UID != want {
			t.Errorf("message %d: UID %s, want %s", i, info.UID, want)
		}
		if info.Size != int64(len(raws[i])) {
			t.Errorf("message %d: size %d, want %d", i, info.Size, len(raws[i]))
		}
		if !info.Date.Equal(date) {
			t.Errorf("message %d: date %v, want %v", i, info.Date, date)
		}
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, raws[i]) {
			t.Errorf("message %d: Open gave %d bytes, want %d, equal %v", i, len(got), len(raws[i]), bytes.Equal(got, raws[i]))
		}
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, f := range s.Flags(user, "INBOX") {
		if slices.Contains(f, `\Seen`) {
			t.Errorf("message %d was marked \\Seen", i)
		}
	}

	// A new session that opens without listing fetches every message in
	// chunks; a small chunk size cuts each message in many pieces.
	o.ChunkSize = 97
	mb = dial(t, s, o)
	for i, uid := range s.UIDs(user, "INBOX") {
		u := mailaccess.UID(fmt.Sprintf("%s/%d", epoch, uid))
		if got := readAll(t, mb, u); !bytes.Equal(got, raws[i]) {
			t.Errorf("message %d in chunks of 97: %d bytes, want %d", i, len(got), len(raws[i]))
		}
	}
	var fetches int
	for _, c := range s.Commands() {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK[]<") {
			fetches++
		}
	}
	if fetches < (7*chunk+123)/97 {
		t.Errorf("%d partial fetches, want the messages in chunks", fetches)
	}
}

func TestEmptyFolder(t *testing.T) {
	s := newServer(t, nil)
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 0 || list == nil {
		t.Fatalf("List = %#v, %v; want an empty list", list, err)
	}
	s.Append(user, "INBOX", message(1, 100))
	list, err = mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List after Append = %v, %v", list, err)
	}
}

func TestOpenExpunged(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message(1, 100))
	s.Append(user, "INBOX", message(2, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// Another client removes the first message.
	other := dial(t, s, nil)
	if err := other.Delete(t.Context(), list[0].UID); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	_, err = mb.Open(t.Context(), list[0].UID)
	if !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open of an expunged message = %v, want ErrNotFound", err)
	}
	if got := readAll(t, mb, list[1].UID); !bytes.Equal(got, message(2, 100)) {
		t.Fatal("the other message changed")
	}
}

// hasPlainExpunge reports whether s received EXPUNGE or CLOSE, which
// remove every \Deleted message.
func hasPlainExpunge(s *imaptest.Server) bool {
	return slices.Contains(names(s), "EXPUNGE") || slices.Contains(names(s), "CLOSE")
}

func TestDeleteCloseExpungesOnlyMarked(t *testing.T) {
	s := newServer(t, nil)
	for i := 1; i <= 4; i++ {
		s.Append(user, "INBOX", message(i, 100))
	}
	// Another client flagged this one \Deleted but did not expunge it.
	s.AppendMessage(user, "INBOX", message(5, 100), []string{`\Deleted`}, time.Time{})
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(t.Context(), list[0].UID, list[2].UID); err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(t.Context(), list[2].UID); err != nil { // twice is fine
		t.Fatal(err)
	}
	for _, n := range names(s) {
		if n == "UID STORE" || n == "UID EXPUNGE" {
			t.Fatalf("Delete sent %s before Close", n)
		}
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := s.Messages(user, "INBOX")
	want := [][]byte{message(2, 100), message(4, 100), message(5, 100)}
	if len(got) != len(want) {
		t.Fatalf("%d messages left, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d left is not the expected one", i)
		}
	}
	if hasPlainExpunge(s) {
		t.Fatalf("a plain EXPUNGE or CLOSE was sent: %v", names(s))
	}
	if !slices.Contains(names(s), "UID EXPUNGE") {
		t.Fatalf("no UID EXPUNGE: %v", names(s))
	}
}

func TestDeleteAbortKeepsEverything(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message(1, 100))
	s.Append(user, "INBOX", message(2, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(t.Context(), uids(list)...); err != nil {
		t.Fatal(err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := mb.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages(user, "INBOX"); len(got) != 2 {
		t.Fatalf("%d messages left, want 2", len(got))
	}
	for _, f := range s.Flags(user, "INBOX") {
		if slices.Contains(f, `\Deleted`) {
			t.Fatal("a message was flagged \\Deleted")
		}
	}
	if err := mb.Close(t.Context()); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Close after Abort = %v, want ErrConnection", err)
	}
	if _, err := mb.List(t.Context()); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("List after Abort = %v, want ErrConnection", err)
	}
}

func TestDeleteOtherEpochIgnored(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message(1, 100))
	mb := dial(t, s, nil)
	if err := mb.Delete(t.Context(), "1/1"+"0"); err != nil { // UIDVALIDITY 10 is not this folder's
		t.Fatalf("Delete of another epoch = %v", err)
	}
	if err := mb.Delete(t.Context(), "garbage"); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("Delete(garbage) = %v, want ErrInvalidArgument", err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages(user, "INBOX"); len(got) != 1 {
		t.Fatalf("%d messages left, want 1", len(got))
	}
}

func TestCommitFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault imaptest.Fault
		want  error
	}{
		{"NO to UID EXPUNGE", imaptest.Fault{No: "[CANNOT] not now"}, mailaccess.ErrCommitFailed},
		{"drop at UID EXPUNGE", imaptest.Fault{Drop: true}, mailaccess.ErrCommitUnknown},
		{"drop in the answer", imaptest.Fault{DropAfterBytes: 3}, mailaccess.ErrCommitUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
				if c.Name == "UID EXPUNGE" {
					return tc.fault
				}
				return imaptest.Fault{}
			}})
			s.Append(user, "INBOX", message(1, 100))
			mb := dial(t, s, nil)
			list, err := mb.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := mb.Delete(t.Context(), list[0].UID); err != nil {
				t.Fatal(err)
			}
			err = mb.Close(t.Context())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Close = %v, want %v", err, tc.want)
			}
			if tc.want == mailaccess.ErrCommitUnknown && !mailaccess.IsTemporary(err) {
				t.Errorf("Close = %v, want it temporary", err)
			}
			if hasPlainExpunge(s) {
				t.Fatalf("a plain EXPUNGE or CLOSE was sent: %v", names(s))
			}
		})
	}
}

func TestNoUIDPlusFlagsOnly(t *testing.T) {
	s := newServer(t, &imaptest.Config{NoUIDPlus: true})
	s.Append(user, "INBOX", message(1, 100))
	s.Append(user, "INBOX", message(2, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Delete(t.Context(), list[0].UID); err != nil {
		t.Fatal(err)
	}
	err = mb.Close(t.Context())
	if !errors.Is(err, mailaccess.ErrUnsupported) || !strings.Contains(err.Error(), "not expunged") {
		t.Fatalf("Close = %v, want ErrUnsupported saying the messages were not expunged", err)
	}
	if got := s.Messages(user, "INBOX"); len(got) != 2 {
		t.Fatalf("%d messages left, want 2", len(got))
	}
	flags := s.Flags(user, "INBOX")
	if !slices.Contains(flags[0], `\Deleted`) || slices.Contains(flags[1], `\Deleted`) {
		t.Fatalf("flags = %v, want only the first \\Deleted", flags)
	}
	if hasPlainExpunge(s) || slices.Contains(names(s), "UID EXPUNGE") {
		t.Fatalf("an EXPUNGE was sent: %v", names(s))
	}
}

func TestMove(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  imaptest.Config
		want []string // commands expected, in order
	}{
		{"MOVE", imaptest.Config{}, []string{"UID MOVE", "CREATE", "UID MOVE"}},
		{"IMAP4rev2", imaptest.Config{IMAP4rev2: true}, []string{"UID MOVE", "CREATE", "UID MOVE"}},
		{"UIDPLUS fallback", imaptest.Config{NoMove: true}, []string{"UID COPY", "CREATE", "UID COPY", "UID STORE", "UID EXPUNGE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &tc.cfg)
			for i := 1; i <= 3; i++ {
				s.Append(user, "INBOX", message(i, 100))
			}
			s.AppendMessage(user, "INBOX", message(4, 100), []string{`\Deleted`}, time.Time{})
			mb := dial(t, s, nil)
			list, err := mb.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			before := len(s.Commands())
			if err := mb.Move(t.Context(), "Archive/2024", list[0].UID, list[2].UID); err != nil {
				t.Fatalf("Move = %v", err)
			}
			if got := names(s)[before:]; !slices.Equal(got, tc.want) {
				t.Fatalf("commands = %v, want %v", got, tc.want)
			}
			inbox := s.Messages(user, "INBOX")
			if len(inbox) != 2 || !bytes.Equal(inbox[0], message(2, 100)) || !bytes.Equal(inbox[1], message(4, 100)) {
				t.Fatalf("INBOX holds %d messages, want messages 2 and 4", len(inbox))
			}
			archive := s.Messages(user, "Archive/2024")
			if len(archive) != 2 || !bytes.Equal(archive[0], message(1, 100)) || !bytes.Equal(archive[1], message(3, 100)) {
				t.Fatalf("Archive/2024 holds %d messages, want messages 1 and 3", len(archive))
			}
			// The folder exists now: no CREATE the second time.
			before = len(s.Commands())
			if err := mb.Move(t.Context(), "Archive/2024", list[1].UID); err != nil {
				t.Fatalf("second Move = %v", err)
			}
			if slices.Contains(names(s)[before:], "CREATE") {
				t.Fatalf("CREATE sent for an existing folder: %v", names(s)[before:])
			}
			// The session goes on.
			if list, err := mb.List(t.Context()); err != nil || len(list) != 1 {
				t.Fatalf("List after Move = %v, %v", list, err)
			}
			if err := mb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if hasPlainExpunge(s) {
				t.Fatalf("a plain EXPUNGE or CLOSE was sent: %v", names(s))
			}
		})
	}
}

// TestListDates: INTERNALDATE is asked for only with Options.ListDates.
func TestListDates(t *testing.T) {
	date := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	for _, on := range []bool{false, true} {
		s := newServer(t, nil)
		s.AppendMessage(user, "INBOX", message(1, 100), nil, date)
		o := options(s)
		o.ListDates = on
		mb := dial(t, s, o)
		list, err := mb.List(t.Context())
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %v, %v", list, err)
		}
		if got := list[0].Date; got.Equal(date) != on || (!on && !got.IsZero()) {
			t.Errorf("ListDates %v: Date = %v", on, got)
		}
	}
}

func TestMoveUnsupported(t *testing.T) {
	s := newServer(t, &imaptest.Config{NoMove: true, NoUIDPlus: true})
	s.Append(user, "INBOX", message(1, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.Commands())
	if err := mb.Move(t.Context(), "Archive", list[0].UID); !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("Move = %v, want ErrUnsupported", err)
	}
	if got := names(s)[before:]; len(got) != 0 {
		t.Fatalf("commands sent: %v", got)
	}
	if got := s.Messages(user, "INBOX"); len(got) != 1 {
		t.Fatal("the message moved")
	}
}

func TestMoveRefused(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID MOVE" {
			return imaptest.Fault{No: "[OVERQUOTA] quota exceeded"}
		}
		return imaptest.Fault{}
	}})
	s.Append(user, "INBOX", message(1, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = mb.Move(t.Context(), "Archive", list[0].UID)
	if !errors.Is(err, mailaccess.ErrCommitFailed) || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("Move = %v, want ErrCommitFailed with the server's text", err)
	}
}

// TestMoveFallbackCopiedNotRemoved: without MOVE, a refused UID STORE
// after a UID COPY answered OK says that the messages are in both
// folders, so that the Fetcher does not copy them again.
func TestMoveFallbackCopiedNotRemoved(t *testing.T) {
	for _, refuse := range []string{"UID COPY", "UID STORE", "UID EXPUNGE"} {
		t.Run(refuse, func(t *testing.T) {
			s := newServer(t, &imaptest.Config{NoMove: true, Fault: func(c imaptest.Command) imaptest.Fault {
				if c.Name == refuse {
					return imaptest.Fault{No: "[UNAVAILABLE] try later"}
				}
				return imaptest.Fault{}
			}})
			s.Append(user, "INBOX", message(1, 100))
			s.SetMessages(user, "Archive", nil)
			mb := dial(t, s, nil)
			list, err := mb.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			err = mb.Move(t.Context(), "Archive", list[0].UID)
			if !errors.Is(err, mailaccess.ErrCommitFailed) {
				t.Fatalf("Move = %v, want ErrCommitFailed", err)
			}
			copied := refuse != "UID COPY"
			if got := errors.Is(err, mailaccess.ErrCopiedNotRemoved); got != copied {
				t.Fatalf("Move = %v: ErrCopiedNotRemoved is %v, want %v", err, got, copied)
			}
			if n := len(s.Messages(user, "Archive")); (n == 1) != copied {
				t.Fatalf("Archive holds %d messages after a refused %s", n, refuse)
			}
			if n := len(s.Messages(user, "INBOX")); n != 1 {
				t.Fatalf("INBOX holds %d messages after a refused %s", n, refuse)
			}
		})
	}
}

func TestUIDValidityChange(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message(1, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	epoch := mb.Describe().UIDEpoch
	if want := fmt.Sprint(s.UIDValidity(user, "INBOX")); epoch != want {
		t.Fatalf("UIDEpoch = %q, want %q", epoch, want)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	s.ResetUIDValidity(user, "INBOX")
	mb = dial(t, s, nil)
	if got := mb.Describe().UIDEpoch; got == epoch {
		t.Fatalf("UIDEpoch did not change: %q", got)
	}
	if _, err := mb.Open(t.Context(), list[0].UID); !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open of an old UID = %v, want ErrNotFound", err)
	}
	newList, err := mb.List(t.Context())
	if err != nil || len(newList) != 1 || newList[0].UID == list[0].UID {
		t.Fatalf("List = %v, %v; want one message with a new UID", newList, err)
	}
	if got := readAll(t, mb, newList[0].UID); !bytes.Equal(got, message(1, 100)) {
		t.Fatal("wrong content under the new UID")
	}
}

// transcriptWatch is a DebugWriter for imaptest that closes seen once the
// transcript holds want.
type transcriptWatch struct {
	mu   sync.Mutex
	buf  []byte
	want string
	seen chan struct{}
}

func (w *transcriptWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if bytes.Contains(w.buf, []byte(w.want)) {
		close(w.seen)
		w.buf = nil
	}
	return len(p), nil
}

func TestWaitWakesOnAppend(t *testing.T) {
	// The server's "+" to IDLE: from then on it reports new mail at once.
	watch := &transcriptWatch{buf: []byte{}, want: ": + ", seen: make(chan struct{})}
	s := newServer(t, &imaptest.Config{DebugWriter: watch})
	mb := dial(t, s, nil)
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	go func() {
		<-watch.seen
		s.Append(user, "INBOX", message(1, 100))
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := mb.Wait(ctx, nil); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	list, err := mb.List(t.Context())
	if err != nil || len(list) == 0 {
		t.Fatalf("List after Wait = %v, %v", list, err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestWaitReady: Wait's ready is called once, when the server has
// answered IDLE, and mail that arrives from then on wakes the wait; a
// Wait that returns before idling never calls it.
func TestWaitReady(t *testing.T) {
	s := newServer(t, nil)
	mb := dial(t, s, nil)
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	ready := func() {
		if calls.Add(1) == 1 {
			s.Append(user, "INBOX", message(1, 100))
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := mb.Wait(ctx, ready); err != nil || calls.Load() != 1 {
		t.Fatalf("Wait = %v, ready called %d times, want nil and once", err, calls.Load())
	}
	// A change reported during another command and not listed yet: Wait
	// returns at once, without idling.
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	s.Append(user, "INBOX", message(2, 100))
	r, err := mb.Open(t.Context(), list[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	calls.Store(0)
	if err := mb.Wait(t.Context(), func() { calls.Add(1) }); err != nil || calls.Load() != 0 {
		t.Fatalf("Wait with a change pending = %v, ready called %d times, want nil and never", err, calls.Load())
	}
	// The caller's context ending while idling: ready was called, the
	// error holds the context's, and the session goes on.
	ctx, cancel = context.WithCancel(t.Context())
	err = mb.Wait(ctx, cancel)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, mailaccess.ErrConnection) || mailaccess.IsTemporary(err) {
		t.Fatalf("Wait = %v, want ErrConnection with context.Canceled, not temporary", err)
	}
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatalf("List after a cancelled Wait = %v", err)
	}
}

func TestWaitUnsupported(t *testing.T) {
	s := newServer(t, &imaptest.Config{NoIdle: true})
	mb := dial(t, s, nil)
	called := false
	if err := mb.Wait(t.Context(), func() { called = true }); !errors.Is(err, mailaccess.ErrUnsupported) || called {
		t.Fatalf("Wait = %v (ready called: %v), want ErrUnsupported without ready", err, called)
	}
}

func TestStallPastTimeout(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" {
			return imaptest.Fault{Stall: time.Minute}
		}
		return imaptest.Fault{}
	}})
	s.Append(user, "INBOX", message(1, 100))
	o := options(s)
	o.Timeout = 300 * time.Millisecond
	mb := dial(t, s, o)
	start := time.Now()
	_, err := mb.List(t.Context())
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("List took %v with a %v timeout", d, o.Timeout)
	}
	if !errors.Is(err, mailaccess.ErrConnection) || !mailaccess.IsTemporary(err) {
		t.Fatalf("List = %v, want a temporary ErrConnection", err)
	}
	start = time.Now()
	if _, err := mb.Open(t.Context(), "1/1"); !errors.Is(err, mailaccess.ErrConnection) || time.Since(start) > time.Second {
		t.Fatalf("Open on a dead session = %v after %v, want ErrConnection at once", err, time.Since(start))
	}
}

func TestDropMidMessage(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK[]") {
			return imaptest.Fault{DropAfterBytes: 5000}
		}
		return imaptest.Fault{}
	}})
	s.Append(user, "INBOX", message(1, 50000))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := mb.Open(t.Context(), list[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err == nil || !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("ReadAll = %d bytes, %v; want ErrConnection, never a short message", len(b), err)
	}
	r.Close()
	if err := mb.Close(t.Context()); err != nil {
		t.Fatalf("Close without marks on a dead session = %v", err)
	}
}

func TestGreetingBye(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Seq == 0 {
			return imaptest.Fault{No: "too many connections"}
		}
		return imaptest.Fault{}
	}})
	o := options(s)
	o.Security = mailaccess.SecurityInsecureCleartext
	_, err := imap.Dial(t.Context(), s.Addr, o)
	if err == nil || errors.Is(err, mailaccess.ErrAuth) {
		t.Fatalf("Dial = %v, want a failure that is not ErrAuth", err)
	}
}

func TestDialFailures(t *testing.T) {
	// A port where nobody listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = imap.Dial(t.Context(), addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}}})
	if !errors.Is(err, mailaccess.ErrConnection) || !mailaccess.IsTemporary(err) {
		t.Fatalf("Dial to a closed port = %v, want a temporary ErrConnection", err)
	}

	// A server that accepts and never speaks: the greeting is bounded.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = imap.Dial(t.Context(), ln.Addr().String(), &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: user, Password: password},
			Security: mailaccess.SecurityInsecureCleartext,
			Timeout:  200 * time.Millisecond,
		},
	})
	if !errors.Is(err, mailaccess.ErrConnection) || time.Since(start) > 5*time.Second {
		t.Fatalf("Dial to a silent server = %v after %v, want ErrConnection within the timeout", err, time.Since(start))
	}

	// A cancelled context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = imap.Dial(ctx, ln.Addr().String(), &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context = %v, want context.Canceled", err)
	}

	// Mechanisms that IMAP does not have.
	_, err = imap.Dial(t.Context(), "127.0.0.1:1", &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password, Mechanism: "APOP"}}})
	if !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("Dial with APOP = %v, want ErrUnsupported", err)
	}
	_, err = imap.Dial(t.Context(), "127.0.0.1:1", &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Mechanism: "XOAUTH2"}}})
	if !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("Dial with XOAUTH2 and no token = %v, want ErrInvalidArgument", err)
	}
}

func TestFolders(t *testing.T) {
	s := newServer(t, nil)
	s.CreateFolder(user, "Archive")
	s.CreateFolder(user, "Work/Projects")
	s.CreateFolder(user, "Entwürfe")
	s.Append(user, "Entwürfe", message(1, 100))
	o := options(s)
	o.Folder = "Entwürfe" // sent in modified UTF-7 (RFC 3501 section 5.1.3)
	mb := dial(t, s, o)
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List of Entwürfe = %v, %v", list, err)
	}
	if err := mb.Move(t.Context(), "Archiv/Ältere", list[0].UID); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages(user, "Archiv/Ältere"); len(got) != 1 {
		t.Fatalf("Archiv/Ältere holds %d messages, want 1", len(got))
	}
	got, err := mb.Folders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"INBOX", "Archive", "Work/Projects", "Entwürfe", "Archiv/Ältere"} {
		if !slices.Contains(got, want) {
			t.Errorf("Folders = %v, missing %q", got, want)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Folders = %v, not sorted", got)
	}
}

func TestNameAndDescribe(t *testing.T) {
	s := newServer(t, nil)
	s.AddUser("bob@example.com", password)
	s.CreateFolder("bob@example.com", "Old Mail/2023")
	o := options(s)
	o.Auth.Username = "bob@example.com"
	o.Folder = "Old Mail/2023"
	mb := dial(t, s, o)
	if got, want := mb.Name(), "imap://bob%40example.com@127.0.0.1/Old%20Mail%2F2023"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if strings.Contains(mb.Name(), password) {
		t.Error("Name holds the password")
	}
	d := mb.Describe()
	if d.Protocol != "imap" || d.UIDEpoch == "" || d.SessionUIDs || d.DeletesOnRetrieval {
		t.Errorf("Describe = %+v", d)
	}
	for _, c := range []string{"UIDPLUS", "MOVE", "IDLE"} {
		if !slices.Contains(d.Capabilities, c) {
			t.Errorf("Capabilities = %v, missing %s", d.Capabilities, c)
		}
	}
}

func TestTLSConfigNotModified(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	cfg := s.ClientTLSConfig()
	cfg.ServerName = ""
	mb := dial(t, s, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}, TLSConfig: cfg}})
	mb.Abort()
	if cfg.ServerName != "" || cfg.NextProtos != nil {
		t.Fatalf("the caller's tls.Config was modified: %q %v", cfg.ServerName, cfg.NextProtos)
	}
	_ = tls.VersionTLS12
}

func TestPasswordWithSpecialCharacters(t *testing.T) {
	const odd = `pä"ss\wörd {5} *`
	for _, mech := range []string{"LOGIN", "PLAIN"} {
		s := imaptest.NewServer(t, nil)
		s.AddUser(user, odd)
		o := options(s)
		o.Auth.Password = odd
		o.Auth.Mechanism = mech
		mb := dial(t, s, o)
		if err := mb.Close(t.Context()); err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
	}
}
