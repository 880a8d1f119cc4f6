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
	}
	for s, want := range good {
		got, err := ParseRetention(s)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v", s, got, err, want)
		}
		// String gives a form that parses back to the same value.
		again, err := ParseRetention(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q via %q: %v, %v", s, got.String(), again, err)
		}
	}
	for _, s := range []string{"", "Keep", "keep=1", "delete=x", "keep-for", "keep-for=", "keep-for=-1h", "keep-for=xd", "keep-for=10", "move", "move=", "move=a\r\nb", "archive", "keep-for=99999999d"} {
		_, err := ParseRetention(s)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseRetention(%q): %v, want ErrInvalidArgument", s, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error for %q has control characters: %q", s, err)
		}
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"keep", "delete", "keep-for=14d", "keep-for=1h", "move=Archive", "move=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("wrong error kind: %v", err)
			}
			return
		}
		if r.Kind == Move && strings.ContainsAny(r.Folder, "\r\n\x00") {
			t.Fatalf("folder with control characters accepted: %q", r.Folder)
		}
		if r.Period < 0 {
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
