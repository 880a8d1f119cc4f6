package pop_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// The secrets of the observability tests: neither may appear in a trace, a
// log or an error, in clear or in base64.
const (
	obsPassword = "Hunter2-Obs3rvable-PW"
	obsToken    = "ya29.Obs3rvable-TOKEN-value"
	bodyMarker  = "BODY-MARKER-must-not-be-traced"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
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

// observed returns Options with a Debug JSON logger and a trace, and the
// buffers they write to.
func observed(o *pop.Options) (logs, trace *syncBuffer) {
	logs, trace = &syncBuffer{}, &syncBuffer{}
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Trace = trace
	return logs, trace
}

var allSASL = []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}

var base64Word = regexp.MustCompile(`[A-Za-z0-9+/=_-]{8,}`)

// noSecret fails if a secret appears in s: in clear, as a substring of
// anything that decodes as base64, or in the base64 of a string holding it
// (at any alignment).
func noSecret(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s holds a secret in clear:\n%s", what, s)
		}
		for pad := range 3 {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + sec))
			// The middle of the encoding does not depend on what surrounds
			// the secret.
			if mid := enc[4 : len(enc)-4]; strings.Contains(s, mid) {
				t.Errorf("%s holds a secret in base64:\n%s", what, s)
			}
		}
		for _, w := range base64Word.FindAllString(s, -1) {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding} {
				if dec, err := enc.DecodeString(w); err == nil && bytes.Contains(dec, []byte(sec)) {
					t.Errorf("%s holds a secret in base64 (%q):\n%s", what, w, s)
				}
			}
		}
	}
}

// checkTrace checks the form of every trace line and that no message body
// is in it.
func checkTrace(t *testing.T, trace string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(trace, "\n"), "\n") {
		if !strings.HasPrefix(l, "C: ") && !strings.HasPrefix(l, "S: ") && !strings.HasPrefix(l, "-- ") {
			t.Errorf("trace line %q has no C:/S:/-- prefix", l)
		}
		if strings.HasPrefix(l, "C: PASS") && l != "C: PASS [REDACTED]" {
			t.Errorf("PASS not redacted: %q", l)
		}
		if strings.HasPrefix(l, "C: APOP") && !strings.HasSuffix(l, " [REDACTED]") {
			t.Errorf("APOP digest not redacted: %q", l)
		}
	}
	if strings.Contains(trace, bodyMarker) {
		t.Errorf("message body in the trace:\n%s", trace)
	}
}

// logEvents returns the "msg" of every log record.
func logEvents(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, rec)
	}
	return out
}

func findEvent(events []map[string]any, msg string) map[string]any {
	for _, e := range events {
		if e["msg"] == msg {
			return e
		}
	}
	return nil
}

func TestObservabilitySuccess(t *testing.T) {
	long := "ya29." + strings.Repeat("L", 300) + obsToken // initial response after "+ "
	for _, tc := range []struct {
		name, mech string
		cfg        poptest.Config
		token      string
		traceWants []string
	}{
		{"USER/PASS", "LOGIN", poptest.Config{}, "", []string{"C: USER alice", "C: PASS [REDACTED]"}},
		{"PLAIN", "PLAIN", poptest.Config{}, "", []string{"C: AUTH PLAIN [REDACTED]", "S: +OK"}},
		{"APOP", "APOP", poptest.Config{APOP: true}, "", []string{"C: APOP alice [REDACTED]"}},
		{"XOAUTH2 in line", "XOAUTH2", poptest.Config{}, obsToken, []string{"C: AUTH XOAUTH2 [REDACTED]"}},
		{"XOAUTH2 after continuation", "XOAUTH2", poptest.Config{}, long, []string{"C: AUTH XOAUTH2", "S: + [REDACTED]", "C: [REDACTED]"}},
		{"OAUTHBEARER", "OAUTHBEARER", poptest.Config{}, obsToken, []string{"C: AUTH OAUTHBEARER [REDACTED]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Tokens = map[string]string{tc.token: user}
			tc.cfg.SASL = allSASL
			s := poptest.NewServer(t, &tc.cfg)
			s.AddUser(user, obsPassword)
			s.AddMessage(user, []byte("Subject: one\r\n\r\n"+bodyMarker+"\r\n"))
			s.AddMessage(user, []byte("Subject: two\r\n\r\n."+bodyMarker+"\r\n"))
			o := opts(s, tc.mech)
			o.Auth.Password = obsPassword
			if tc.token != "" {
				o.Auth.Password = ""
				o.Auth.Token = func(context.Context) (string, error) { return tc.token, nil }
			}
			logs, trace := observed(o)
			mb := dial(t, s, o)
			list, err := mb.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, mb, list[0].UID)
			r, err := mb.Open(t.Context(), list[1].UID)
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // early: drained
			if err := mb.Delete(t.Context(), list[0].UID); err != nil {
				t.Fatal(err)
			}
			if err := mb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}

			tr := trace.String()
			checkTrace(t, tr)
			for _, want := range append(tc.traceWants, "-- TLS handshake", "C: STLS", "C: RETR 1", "S: [message body, ", "C: DELE 1", "C: QUIT") {
				if !strings.Contains(tr, "\n"+want) && !strings.HasPrefix(tr, want) {
					t.Errorf("trace lacks %q:\n%s", want, tr)
				}
			}
			noSecret(t, "trace", tr, obsPassword, obsToken)
			noSecret(t, "logs", logs.String(), obsPassword, obsToken)

			ev := logEvents(t, logs.String())
			if e := findEvent(ev, "connected"); e == nil || e["security"] != "starttls" || e["server"] != s.Addr {
				t.Errorf("connect event %v", e)
			}
			if e := findEvent(ev, "logged in"); e == nil || e["user"] != user || e["mechanism"] != tc.mech || e["level"] != "DEBUG" {
				t.Errorf("login event %v", e)
			}
			if e := findEvent(ev, "listed"); e == nil || e["count"] != 2.0 {
				t.Errorf("list event %v", e)
			}
			var outcomes []string
			for _, e := range ev {
				if e["msg"] == "retrieved" {
					outcomes = append(outcomes, fmt.Sprint(e["uid"], " ", e["outcome"]))
				}
			}
			if want := fmt.Sprint(list[0].UID, " complete"); len(outcomes) != 2 || outcomes[0] != want || !strings.HasPrefix(outcomes[1], string(list[1].UID)+" closed early") {
				t.Errorf("retrieve events %q", outcomes)
			}
			if e := findEvent(ev, "marked for deletion"); e == nil || e["count"] != 1.0 || e["level"] != "INFO" {
				t.Errorf("deletion event %v", e)
			}
			if e := findEvent(ev, "quit"); e == nil || e["commit"] != "committed" || e["level"] != "INFO" {
				t.Errorf("commit event %v", e)
			}
		})
	}
}

func TestObservabilityFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   poptest.Config
		mech  string
		token bool
		want  error
	}{
		{"wrong password USER/PASS", poptest.Config{}, "LOGIN", false, mailaccess.ErrAuth},
		{"wrong password PLAIN", poptest.Config{}, "PLAIN", false, mailaccess.ErrAuth},
		{"wrong password APOP", poptest.Config{APOP: true}, "APOP", false, mailaccess.ErrAuth},
		{"XOAUTH2 refused with the JSON challenge", poptest.Config{}, "XOAUTH2", true, mailaccess.ErrAuth},
		{"OAUTHBEARER refused", poptest.Config{}, "OAUTHBEARER", true, mailaccess.ErrAuth},
		{"server echoes the password", poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
			if c.Name == "PASS" {
				return poptest.Fault{Err: "[AUTH] no such password: " + obsPassword}
			}
			return poptest.Fault{}
		}}, "LOGIN", false, mailaccess.ErrAuth},
		{"STLS response injection", poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
			if c.Name == "STLS" {
				return poptest.Fault{Reply: "+OK begin\r\n+OK injected\r\n"}
			}
			return poptest.Fault{}
		}}, "LOGIN", false, mailaccess.ErrTLS},
		{"connection dropped at PASS", poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
			if c.Name == "PASS" {
				return poptest.Fault{Drop: true}
			}
			return poptest.Fault{}
		}}, "LOGIN", false, mailaccess.ErrConnection},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Tokens = map[string]string{"the-right-token": user}
			tc.cfg.SASL = allSASL
			s := poptest.NewServer(t, &tc.cfg)
			s.AddUser(user, "the-right-password")
			o := opts(s, tc.mech)
			o.Auth.Password = obsPassword
			if tc.token {
				o.Auth.Password = ""
				o.Auth.Token = func(context.Context) (string, error) { return obsToken, nil }
			}
			logs, trace := observed(o)
			_, err := pop.Dial(t.Context(), s.Addr, o)
			wantKind(t, err, tc.want)
			checkTrace(t, trace.String())
			noSecret(t, "trace", trace.String(), obsPassword, obsToken)
			noSecret(t, "logs", logs.String(), obsPassword, obsToken)
			noSecret(t, "error", err.Error()+fmt.Sprintf(" %#v", err), obsPassword, obsToken)
			if e := findEvent(logEvents(t, logs.String()), "pop3 error"); e == nil || e["level"] != "WARN" {
				t.Errorf("no Warn event for the failure: %s", logs.String())
			}
		})
	}
}

func TestObservabilityXOAUTH2ChallengeHidden(t *testing.T) {
	// The JSON error challenge of XOAUTH2 comes as "+ <base64>": the trace
	// shows neither it nor the client's empty answer.
	s := poptest.NewServer(t, &poptest.Config{SASL: allSASL, Tokens: map[string]string{"other": user}})
	s.AddUser(user, "x")
	o := opts(s, "XOAUTH2")
	o.Auth.Password = ""
	o.Auth.Token = func(context.Context) (string, error) { return obsToken, nil }
	_, trace := observed(o)
	_, err := pop.Dial(t.Context(), s.Addr, o)
	wantKind(t, err, mailaccess.ErrAuth)
	tr := trace.String()
	if !strings.Contains(tr, "S: + [REDACTED]\n") || !strings.Contains(tr, "C: [REDACTED]\n") || !strings.Contains(tr, "S: -ERR") {
		t.Fatalf("SASL exchange not shown redacted:\n%s", tr)
	}
	if strings.Contains(tr, "status") || strings.Contains(tr, base64.StdEncoding.EncodeToString([]byte(`{"status"`))[:8]) {
		t.Fatalf("challenge in the trace:\n%s", tr)
	}
}

func TestTraceEscapesControlCharacters(t *testing.T) {
	// A server cannot forge a trace line with a CR or a LF of its own.
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "NOOP" || c.Seq != 0 {
			return poptest.Fault{}
		}
		return poptest.Fault{Reply: "+OK hello\rC: PASS forged\x1b[2J\r\n"}
	}})
	o := opts(s, "")
	_, trace := observed(o)
	mb := dial(t, s, o)
	mb.Abort()
	tr := trace.String()
	if !strings.HasPrefix(tr, `S: +OK hello\rC: PASS forged\x1b[2J`+"\n") {
		t.Fatalf("greeting traced as %q", strings.SplitN(tr, "\n", 2)[0])
	}
	checkTrace(t, tr)
}

func TestNilLoggerAndTrace(t *testing.T) {
	// The zero Options log and trace nothing, and work.
	s := setup(t, nil)
	s.AddMessage(user, []byte("x\r\n"))
	mb := dial(t, s, opts(s, ""))
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	if b := readAll(t, mb, list[0].UID); string(b) != "x\r\n" {
		t.Fatalf("%q", b)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
