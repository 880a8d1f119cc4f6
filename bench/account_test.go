package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/unimail/unimail/internal/dovecottest"
)

func TestParseAccountProfile(t *testing.T) {
	ps, err := ParseProfiles("account", nil)
	if err != nil || len(ps) != 1 || !ps[0].Account || ps[0].Name != ProfileAccount {
		t.Fatalf("ParseProfiles(account) = %+v, %v", ps, err)
	}
	if n := len(ps[0].Messages()); n != AccountFolders*AccountPerFolder {
		t.Fatalf("account profile has %d messages", n)
	}
	all, err := ParseProfiles("all", DefaultIncrementalSizes)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Account {
			t.Fatal("all includes the account profile")
		}
	}
	rc, err := writeMbsyncrcFor(t.TempDir(), Target{Proto: IMAP, Addr: "127.0.0.1:993", User: "bob", CAFile: "/ca.pem"}, "pw", true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(rc)
	if !strings.Contains(string(b), "\nFar :far:\nNear :near:\nPatterns *\n") {
		t.Fatalf("mbsyncrc for an account:\n%s", b)
	}
}

// TestRunnerTinyAccount runs the account profile's machinery on 40
// messages (2 per folder): every case delivers every message, the run with
// nothing new none, and the report gives the ratio of the account to one
// folder.
func TestRunnerTinyAccount(t *testing.T) {
	if DovecotPath() == "" && os.Getenv(dovecottest.RequireEnv) != "1" {
		t.Skip("Dovecot is not installed")
	}
	bin := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childEnv, "1")
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	r := &Runner{
		Exe:      exe,
		Launcher: []string{build(t, bin, "bench/cmd/spawn")},
		Retrieve: build(t, bin, "examples/retrieve"),
		Mbsync:   MbsyncPath(),
		Runs:     1,
		WorkDir:  t.TempDir(),
	}
	var log bytes.Buffer
	r.Log = &log
	p := accountProfile()
	p.Messages = func() [][]byte { return SmallMessages(2 * AccountFolders) }
	res, err := r.Run(t.Context(), p)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	want := 6
	if r.Mbsync != "" {
		want = 8
	}
	if len(res.Cases) != want {
		t.Fatalf("%d cases, want %d: %+v", len(res.Cases), want, res.Cases)
	}
	for _, c := range res.Cases {
		n := 2 * AccountFolders
		if c.Phase == PhaseNoNew {
			n = 0
		}
		if len(c.Samples) != 1 || c.Wall <= 0 || c.Messages != n {
			t.Errorf("%s: %+v", c.Case, c)
		}
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, CollectMeta("test", r.Runs), []ProfileResult{res}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| library, whole account | IMAP |", "| library, whole account, nothing new | IMAP |", "| retrieve, whole account | IMAP |", "The library over the whole account of 20 folders, on one connection, took "} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, md.String())
		}
	}
}
