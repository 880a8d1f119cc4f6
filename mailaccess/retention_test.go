package mailaccess

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/safetext"
)

func TestParseRetention(t *testing.T) {
	good := map[string]Retention{
		"keep":           KeepOnServer,
		"delete":         DeleteAfterFetch,
		"keep-for=14d":   KeepFor(14 * 24 * time.Hour),
		"keep-for=336h":  KeepFor(336 * time.Hour),
		"keep-for=90m":   KeepFor(90 * time.Minute),
		"keep-for=0d":    KeepFor(0),
		"move=Archive":   MoveTo("Archive"),
		"move=a/b c=d":   MoveTo("a/b c=d"),
		"keep-for=1h30m": KeepFor(90 * time.Minute),
		// What people write: weeks, any letter case, spaces around.
		"keep-for=2w":    KeepFor(14 * 24 * time.Hour),
		"KEEP-FOR=2W":    KeepFor(14 * 24 * time.Hour),
		"Keep":           KeepOnServer,
		"Delete":         DeleteAfterFetch,
		" delete ":       DeleteAfterFetch,
		"Keep-For=1H30M": KeepFor(90 * time.Minute),
		"Move=Archive":   MoveTo("Archive"), // the folder keeps its case
	}
	for s, want := range good {
		got, err := ParseRetention(s)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %q, %v; want %q", s, got, err, want)
		}
		// String gives a form that parses back to the same value.
		again, err := ParseRetention(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q via %q: %v, %v", s, got.String(), again, err)
		}
	}
	if KeepFor(14*24*time.Hour) != "keep-for=14d" || KeepFor(90*time.Minute) != "keep-for=1h30m0s" {
		t.Errorf("canonical forms: %q, %q", KeepFor(14*24*time.Hour), KeepFor(90*time.Minute))
	}
	// Every refusal returns the zero Retention (which is not KeepOnServer)
	// and an error that names what was wrong.
	bad := map[string]string{
		"":                   "empty",
		"keep=1":             "keep takes no value",
		"delete=x":           "delete takes no value",
		"keep-for":           "keep-for needs a duration",
		"keep-for=":          "keep-for needs a duration",
		"keep-for=-1h":       "negative duration",
		"keep-for=xd":        `bad number "x" before "d"`,
		"keep-for=10":        "bad duration",
		"move":               "move needs a folder",
		"move=":              "move needs a folder",
		"move=a\r\nb":        "the folder contains CR, LF or NUL",
		"archive":            `unknown retention "archive"`,
		"keep-for=99999999d": "longer than 100 years",
	}
	for s, why := range bad {
		s = strings.ReplaceAll(s, `\r\n`, "\r\n")
		got, err := ParseRetention(s)
		if !errors.Is(err, ErrInvalidArgument) || got != "" || got == KeepOnServer {
			t.Errorf("ParseRetention(%q) = %q, %v; want the zero Retention and ErrInvalidArgument", s, got, err)
			continue
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("ParseRetention(%q): %q does not say %q", s, err, why)
		}
		if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error for %q has control characters: %q", s, err)
		}
	}
}

func TestRetentionParts(t *testing.T) {
	for _, c := range []struct {
		r      Retention
		period time.Duration
		folder string
		kind   policyKind
	}{
		{"", 0, "", policyKeep},
		{KeepOnServer, 0, "", policyKeep},
		{DeleteAfterFetch, 0, "", policyDelete},
		{KeepFor(36 * time.Hour), 36 * time.Hour, "", policyKeepFor},
		{MoveTo("Done"), 0, "Done", policyMove},
	} {
		p, err := c.r.policy()
		if err != nil || p.kind != c.kind || c.r.Period() != c.period || c.r.Folder() != c.folder {
			t.Errorf("%q: policy %+v, %v; Period %v; Folder %q", c.r, p, err, c.r.Period(), c.r.Folder())
		}
	}
	for _, r := range []Retention{"keep ", "KEEP", "move=", MoveTo("a\nb"), "keep-for=soon"} {
		if _, err := r.policy(); err == nil {
			t.Errorf("%q: no error", r)
		}
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"keep", "delete", "keep-for=14d", "keep-for=1h", "move=Archive", "move=\x00", "KEEP-FOR=2W"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) || r != "" {
				t.Fatalf("refusal: %q, %v", r, err)
			}
			return
		}
		p, err := r.policy()
		if err != nil {
			t.Fatalf("%q parsed to %q, which the Fetcher refuses: %v", s, r, err)
		}
		if strings.ContainsAny(p.folder, "\r\n\x00") {
			t.Fatalf("folder with control characters accepted: %q", p.folder)
		}
		if p.period < 0 {
			t.Fatalf("negative period from %q", s)
		}
		again, err := ParseRetention(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

func TestErrorKinds(t *testing.T) {
	cause := errors.New("boom")
	e := newError("pop3 PASS", ErrAuth, "bad\r\npassword\x1b[31m", cause)
	if !errors.Is(e, ErrAuth) || !errors.Is(e, cause) || errors.Is(e, ErrTLS) {
		t.Fatalf("errors.Is on %v", e)
	}
	if strings.ContainsAny(e.Error(), "\r\n\x1b") {
		t.Fatalf("control characters survive: %q", e.Error())
	}
	if got, ok := errors.AsType[*Error](e); !ok || got.Op != "pop3 PASS" {
		t.Fatalf("AsType: %v %v", got, ok)
	}
	if IsTemporary(e) {
		t.Fatal("auth failure is not temporary")
	}
	if !IsTemporary(newError("x", ErrConnection, "", nil)) {
		t.Fatal("connection failure is temporary")
	}
	if err := checkArg("username", "bob\r\nDELE 1"); !errors.Is(err, ErrInvalidArgument) || strings.Contains(err.Error(), "bob") {
		t.Fatalf("CheckArg: %v", err)
	}
	long := strings.Repeat("é", 300)
	if s := safetext.Sanitize(long); len(s) > 260 {
		t.Fatalf("SanitizeText kept %d bytes", len(s))
	}
}

func TestAuthNeverPrintsSecrets(t *testing.T) {
	a := Auth{Username: "alice", Password: "hunter2-secret"}
	for _, s := range []string{a.String(), a.GoString(), a.LogValue().String()} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	if err := (Auth{Username: "a\nb"}).Check(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Check: %v", err)
	}
}
