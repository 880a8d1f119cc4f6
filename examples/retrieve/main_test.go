package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/pop/poptest"
)

const password = "retrieve-test-password"

func env(pw string) func(string) string {
	return func(k string) string {
		if k == "UNIMAIL_PASSWORD" {
			return pw
		}
		return ""
	}
}

func testMessages() [][]byte {
	return [][]byte{
		[]byte("Subject: one\r\n\r\n.leading dot\r\n"),
		[]byte("Subject: two\r\n\r\nbody\r\n"),
		[]byte("Subject: three\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n"),
	}
}

func runRetrieve(t *testing.T, pw string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, env(pw), &out, &errb)
	return code, out.String(), errb.String()
}

func writeCA(t *testing.T, pem []byte) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func maildirFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func sameSet(t *testing.T, got, want [][]byte) {
	t.Helper()
	cmp := func(a, b []byte) int { return bytes.Compare(a, b) }
	g, w := slices.Clone(got), slices.Clone(want)
	slices.SortFunc(g, cmp)
	slices.SortFunc(w, cmp)
	if len(g) != len(w) {
		t.Fatalf("Maildir holds %d messages, want %d", len(g), len(w))
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			t.Fatalf("Maildir message differs: %q vs %q", g[i], w[i])
		}
	}
}

func TestRetrievePOP3Delete(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	md := filepath.Join(t.TempDir(), "Mail")
	code, out, errs := runRetrieve(t, password, "-maildir", md, "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	if code != 0 || out != "delivered=3 skipped=0 deleted=3 bytes=5072\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	sameSet(t, maildirFiles(t, md), testMessages())
	if n := len(s.Messages("alice")); n != 0 {
		t.Fatalf("server holds %d", n)
	}
	if _, err := os.Stat(filepath.Join(md, ".unimail-state")); err != nil {
		t.Fatalf("default state file: %v", err)
	}
}

func TestRetrieveIMAPKeepTwice(t *testing.T) {
	s := imaptest.NewServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	md := filepath.Join(t.TempDir(), "Mail")
	state := filepath.Join(t.TempDir(), "state")
	pwfile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwfile, []byte(password+"\n"), 0o600)
	args := []string{"-maildir", md, "-state", state, "-password-file", pwfile, "-ca", writeCA(t, s.CertPEM()), "imap://alice@" + s.Addr + "/INBOX"}
	code, out, errs := runRetrieve(t, "", args...)
	if code != 0 || out != "delivered=3 skipped=0 deleted=0 bytes=5072\n" {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runRetrieve(t, "", args...)
	if code != 0 || out != "delivered=0 skipped=3 deleted=0 bytes=0\n" {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	sameSet(t, maildirFiles(t, md), testMessages())
	if n := len(s.Messages("alice", "INBOX")); n != 3 {
		t.Fatalf("server holds %d, want 3", n)
	}
}

func TestRetrieveMoveAndMaxSize(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	md := filepath.Join(t.TempDir(), "Mail")
	code, out, errs := runRetrieve(t, password, "-maildir", md, "-retention", "move=Archive", "-max-size", "1000", "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr)
	if code != 0 || out != "delivered=2 skipped=1 deleted=0 bytes=52\n" || !strings.Contains(errs, "too large") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if got := len(s.Messages("alice", "Archive")); got != 2 {
		t.Fatalf("Archive holds %d", got)
	}
	if got := len(s.Messages("alice", "INBOX")); got != 1 {
		t.Fatalf("INBOX holds %d", got)
	}
}

func TestRetrieveFailures(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	ca := writeCA(t, s.CertPEM())
	md := filepath.Join(t.TempDir(), "Mail")
	url := "pop3s://alice@" + s.Addr
	cases := []struct {
		name string
		pw   string
		args []string
		code int
	}{
		{"wrong password", "not-the-password", []string{"-maildir", md, "-ca", ca, url}, exitAuth},
		{"no password", "", []string{"-maildir", md, "-ca", ca, url}, exitUsage},
		{"untrusted certificate", password, []string{"-maildir", md, url}, exitTLS},
		{"no maildir", password, []string{"-ca", ca, url}, exitUsage},
		{"bad retention", password, []string{"-maildir", md, "-retention", "sometimes", "-ca", ca, url}, exitUsage},
		{"bad URL", password, []string{"-maildir", md, "http://" + s.Addr}, exitUsage},
		{"two URLs", password, []string{"-maildir", md, url, url}, exitUsage},
		{"cleartext refused without STLS", password, []string{"-maildir", md, "-ca", ca, "pop3://alice@" + noSTLS(t)}, exitTLS},
	}
	for _, c := range cases {
		code, out, errs := runRetrieve(t, c.pw, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", c.name, code, c.code, out, errs)
		}
		if strings.Contains(errs, "not-the-password") || strings.Contains(errs, password) {
			t.Errorf("%s: stderr shows the password: %q", c.name, errs)
		}
		if c.code != exitUsage && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: want one line on stderr, got %q", c.name, errs)
		}
	}
	if n := len(s.Messages("alice")); n != 3 {
		t.Fatalf("server holds %d after failed runs, want 3", n)
	}
}

func noSTLS(t *testing.T) string {
	s := poptest.NewServer(t, &poptest.Config{NoSTLS: true})
	s.AddUser("alice", password)
	return s.Addr
}

// A Maildir that cannot take the messages: they stay on the server, and
// the exit status says so.
func TestRetrieveUndeliverable(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	md := filepath.Join(t.TempDir(), "Mail")
	for _, d := range []string{"new", "cur"} {
		os.MkdirAll(filepath.Join(md, d), 0o700)
	}
	os.WriteFile(filepath.Join(md, "tmp"), []byte("not a directory"), 0o600)
	code, out, errs := runRetrieve(t, password, "-maildir", md, "-state", filepath.Join(t.TempDir(), "st"), "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	if code != exitUndeliver {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := len(s.Messages("alice")); n != 3 {
		t.Fatalf("server holds %d, want 3", n)
	}
}
