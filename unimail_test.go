package unimail_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in   string
		want unimail.Target
	}{
		{"pop3s://alice@pop.example.com", unimail.Target{Scheme: "pop3s", Addr: "pop.example.com:995", Host: "pop.example.com", User: "alice", Security: mailaccess.SecurityTLS}},
		{"pop3://alice@pop.example.com:1110", unimail.Target{Scheme: "pop3", Addr: "pop.example.com:1110", Host: "pop.example.com", User: "alice", Security: mailaccess.SecurityStartTLS}},
		{"imaps://alice%40example.com@mail.example.com/", unimail.Target{Scheme: "imaps", Addr: "mail.example.com:993", Host: "mail.example.com", User: "alice@example.com", Folder: "INBOX", Security: mailaccess.SecurityTLS}},
		{"IMAP://bob:s%3Acret@[::1]/Lists/Go%20Nuts", unimail.Target{Scheme: "imap", Addr: "[::1]:143", Host: "::1", User: "bob", Password: "s:cret", Folder: "Lists/Go Nuts", Security: mailaccess.SecurityStartTLS}},
		{"imaps://carol;AUTH=PLAIN@h", unimail.Target{Scheme: "imaps", Addr: "h:993", Host: "h", User: "carol", Mechanism: "PLAIN", Folder: "INBOX", Security: mailaccess.SecurityTLS}},
		{"pop3s://h", unimail.Target{Scheme: "pop3s", Addr: "h:995", Host: "h", Security: mailaccess.SecurityTLS}},
	}
	for _, c := range cases {
		got, err := unimail.ParseURL(c.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.in, err)
			continue
		}
		if *got != c.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", c.in, *got, c.want)
		}
	}
	for _, bad := range []string{
		"", "alice@host", "http://host", "smtp://host", "pop3s://", "pop3s://alice@",
		"pop3s://h/INBOX", "imaps://h/?x=1", "imaps://h/#frag", "imaps://h:/", "imaps://a;X=1@h",
		"imaps://h/IN%0D%0ABOX", "imaps://al%0Aice@h", "pop3s:opaque", "imaps://%zz@h",
		"imaps://alice:topsecret@h/%0d",
	} {
		_, err := unimail.ParseURL(bad)
		if !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Errorf("ParseURL(%q): %v, want ErrInvalidArgument", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"pop3s://alice@h", "imap://a:b@h:1/X", "imaps://a;AUTH=XOAUTH2@h/", "pop3://[::1]:110"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := unimail.ParseURL(s)
		if err != nil {
			if !errors.Is(err, mailaccess.ErrInvalidArgument) {
				t.Fatalf("wrong error kind: %v", err)
			}
			return
		}
		for _, v := range []string{tg.User, tg.Password, tg.Folder, tg.Host, tg.Addr} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("control character accepted in %q", s)
			}
		}
		if tg.Protocol() != "pop3" && tg.Protocol() != "imap" {
			t.Fatalf("protocol %q", tg.Protocol())
		}
		if u, err := url.Parse(tg.String()); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				t.Fatalf("String shows the password: %q", tg.String())
			}
		}
	})
}

func TestDialEveryScheme(t *testing.T) {
	ps := poptest.NewServer(t, nil)
	pss := poptest.NewTLSServer(t, nil)
	is := imaptest.NewServer(t, nil)
	iss := imaptest.NewTLSServer(t, nil)
	for _, s := range []*poptest.Server{ps, pss} {
		s.AddUser("alice", "pw")
		s.AddMessage("alice", []byte("Subject: x\r\n\r\nx\r\n"))
	}
	for _, s := range []*imaptest.Server{is, iss} {
		s.AddUser("alice", "pw")
		s.Append("alice", "INBOX", []byte("Subject: x\r\n\r\nx\r\n"))
		s.Append("alice", "Work", []byte("Subject: y\r\n\r\ny\r\n"))
		s.Append("alice", "Work", []byte("Subject: z\r\n\r\nz\r\n"))
	}
	cases := []struct {
		url  string
		opts unimail.Options
		n    int
		name string
	}{
		{"pop3://alice@" + ps.Addr, unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: ps.ClientTLSConfig()}}, 1, "pop3://alice@127.0.0.1"},
		{"pop3s://alice@" + pss.Addr, unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: pss.ClientTLSConfig()}}, 1, "pop3://alice@127.0.0.1"},
		{"pop3://alice@" + ps.Addr, unimail.Options{InsecureCleartext: true}, 1, "pop3://alice@127.0.0.1"},
		{"imap://alice@" + is.Addr + "/Work", unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: is.ClientTLSConfig()}}, 2, "imap://alice@127.0.0.1/Work"},
		{"imaps://alice@" + iss.Addr, unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: iss.ClientTLSConfig()}}, 1, "imap://alice@127.0.0.1/INBOX"},
		{"imap://alice@" + is.Addr, unimail.Options{InsecureCleartext: true}, 1, "imap://alice@127.0.0.1/INBOX"},
	}
	for _, c := range cases {
		c.opts.Auth.Password = "pw"
		c.opts.Timeout = 5 * time.Second
		mb, err := unimail.Dial(t.Context(), c.url, &c.opts)
		if err != nil {
			t.Errorf("Dial(%s): %v", c.url, err)
			continue
		}
		list, err := mb.List(t.Context())
		if err != nil || len(list) != c.n {
			t.Errorf("%s: List: %d, %v; want %d", c.url, len(list), err, c.n)
		}
		if mb.Name() != c.name {
			t.Errorf("%s: Name %q, want %q", c.url, mb.Name(), c.name)
		}
		mb.Close(t.Context())
	}
	// Certificates are verified: without the test CA, TLS fails.
	_, err := unimail.Dial(t.Context(), "imaps://alice@"+iss.Addr, &unimail.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Password: "pw"}, Timeout: 5 * time.Second}})
	if !errors.Is(err, mailaccess.ErrTLS) {
		t.Errorf("untrusted certificate: %v, want ErrTLS", err)
	}
	_, err = unimail.Dial(t.Context(), "pop3s://alice@"+pss.Addr, &unimail.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Password: "pw"}, Timeout: 5 * time.Second}})
	if !errors.Is(err, mailaccess.ErrTLS) {
		t.Errorf("untrusted certificate: %v, want ErrTLS", err)
	}
	// A URL password works, but a wrong one is an ErrAuth that does not
	// repeat it.
	_, err = unimail.Dial(t.Context(), "pop3s://alice:wrong-secret@"+pss.Addr, &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: pss.ClientTLSConfig(), Timeout: 5 * time.Second}})
	if !errors.Is(err, mailaccess.ErrAuth) || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("wrong URL password: %v", err)
	}
}

// The trace and the log reach through Dial, redacted.
func TestDialTraceAndLogRedacted(t *testing.T) {
	const secret = "very-secret-password-42"
	ps := poptest.NewTLSServer(t, nil)
	ps.AddUser("alice", secret)
	is := imaptest.NewTLSServer(t, nil)
	is.AddUser("alice", secret)
	for _, c := range []struct {
		url string
		tls *tls.Config
	}{{"pop3s://alice@" + ps.Addr, ps.ClientTLSConfig()}, {"imaps://alice@" + is.Addr, is.ClientTLSConfig()}} {
		var trace, logs bytes.Buffer
		for _, pw := range []string{secret, secret + "-wrong"} {
			mb, err := unimail.Dial(t.Context(), c.url, &unimail.Options{
				DialOptions: mailaccess.DialOptions{
					Auth:      mailaccess.Auth{Password: pw},
					TLSConfig: c.tls,
					Timeout:   5 * time.Second,
					Trace:     &trace,
					Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				},
			})
			if err == nil {
				mb.List(t.Context())
				mb.Close(t.Context())
			} else if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error shows the password", c.url)
			}
		}
		if !strings.Contains(trace.String(), "C: ") || logs.Len() == 0 {
			t.Errorf("%s: no trace or no log:\n%s\n%s", c.url, trace.String(), logs.String())
		}
		for what, s := range map[string]string{"trace": trace.String(), "log": logs.String()} {
			if strings.Contains(s, secret) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("\x00alice\x00"+secret))) {
				t.Errorf("%s: the %s shows the password", c.url, what)
			}
		}
	}
}
