package imap_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leaks returns the forms of the secrets found in text: each secret
// itself, and the base64 of the SASL initial responses that carry it.
func leaks(text string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		forms := []string{
			s,
			base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + s)),
			base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + s + "\x01\x01")),
			base64.StdEncoding.EncodeToString([]byte("n,a=" + user + ",\x01auth=Bearer " + s + "\x01\x01")),
		}
		for _, f := range forms {
			if strings.Contains(text, f) {
				found = append(found, f)
			}
		}
	}
	return found
}

func TestTraceAndLogsHoldNoSecret(t *testing.T) {
	const (
		secretPassword = `pa"ss w0rd\secret-9731`
		token          = "ya29.token-SECRET-5511"
	)
	body := message(1, 3000)
	cases := []struct {
		name     string
		mech     string
		password string
		token    string
		security mailaccess.Security
		ok       bool
	}{
		{"login", "LOGIN", secretPassword, "", mailaccess.SecurityStartTLS, true},
		{"plain", "PLAIN", secretPassword, "", mailaccess.SecurityStartTLS, true},
		{"plain-tls", "", secretPassword, "", mailaccess.SecurityTLS, true},
		{"login-cleartext", "LOGIN", secretPassword, "", mailaccess.SecurityInsecureCleartext, true},
		{"login-wrong", "LOGIN", "wrong-" + secretPassword, "", mailaccess.SecurityStartTLS, false},
		{"plain-wrong", "PLAIN", "wrong-" + secretPassword, "", mailaccess.SecurityStartTLS, false},
		{"xoauth2", "XOAUTH2", "", token, mailaccess.SecurityStartTLS, true},
		{"xoauth2-wrong", "XOAUTH2", "", "wrong-" + token, mailaccess.SecurityStartTLS, false},
		{"oauthbearer-wrong", "OAUTHBEARER", "", "wrong-" + token, mailaccess.SecurityStartTLS, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s *imaptest.Server
			if tc.security == mailaccess.SecurityTLS {
				s = imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{token: user}})
			} else {
				s = imaptest.NewServer(t, &imaptest.Config{Tokens: map[string]string{token: user}})
			}
			s.AddUser(user, secretPassword)
			s.Append(user, "INBOX", body)
			trace, logs := &syncBuffer{}, &syncBuffer{}
			o := &imap.Options{
				DialOptions: mailaccess.DialOptions{
					Auth:      mailaccess.Auth{Username: user, Password: tc.password, Mechanism: tc.mech},
					Security:  tc.security,
					TLSConfig: s.ClientTLSConfig(),
					Trace:     trace,
					Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				},
			}
			if tc.token != "" {
				tok := tc.token
				o.Auth.Token = func(context.Context) (string, error) { return tok, nil }
			}
			var errs []error
			mb, err := imap.Dial(t.Context(), s.Addr, o)
			errs = append(errs, err)
			if (err == nil) != tc.ok {
				t.Fatalf("Dial = %v, want success %v", err, tc.ok)
			}
			if err == nil {
				list, err := mb.List(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, mb, list[0].UID); !bytes.Equal(got, body) {
					t.Fatal("message not byte-exact")
				}
				_, err = mb.Open(t.Context(), "1/99")
				errs = append(errs, err, mb.Delete(t.Context(), list[0].UID), mb.Close(t.Context()))
			}
			var all strings.Builder
			all.WriteString(trace.String())
			all.WriteString(logs.String())
			for _, e := range errs {
				if e != nil {
					fmt.Fprintf(&all, "%v %#v\n", e, e)
				}
			}
			if l := leaks(all.String(), secretPassword, strings.TrimPrefix(tc.password, "wrong-"), tc.password, token, tc.token); len(l) > 0 {
				t.Fatalf("secrets %q found in the trace, logs or errors:\n%s", l, all.String())
			}
			tr := trace.String()
			for _, want := range []string{"S: * ", "C: "} {
				if !strings.Contains(tr, want) {
					t.Fatalf("trace lacks %q:\n%s", want, tr)
				}
			}
			if tc.security == mailaccess.SecurityStartTLS && !strings.Contains(tr, "C: S1 STARTTLS") {
				t.Fatalf("trace lacks STARTTLS:\n%s", tr)
			}
			if tc.mech == "LOGIN" && !strings.Contains(tr, "LOGIN "+user+" [REDACTED]") && !strings.Contains(tr, `LOGIN "`+user+`" [REDACTED]`) {
				t.Fatalf("trace lacks the redacted LOGIN:\n%s", tr)
			}
			if tc.ok {
				if !strings.Contains(tr, fmt.Sprintf("[%d octets]", len(body))) || strings.Contains(tr, "Subject: message 1") {
					t.Fatalf("the body is not replaced by its size in the trace:\n%s", tr)
				}
				for _, ev := range []string{"imap connect", "imap login", "imap selected", "imap fetch", "imap commit"} {
					if !strings.Contains(logs.String(), ev) {
						t.Fatalf("logs lack %q:\n%s", ev, logs.String())
					}
				}
			} else if !strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("no warning logged for a failed login:\n%s", logs.String())
			}
		})
	}
}
