package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/internal/deliver"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// mboxMessages holds lines that mboxrd must quote.
func mboxMessages() [][]byte {
	return [][]byte{
		[]byte("Return-Path: <a@example.org>\r\nSubject: one\r\n\r\nFrom the start\r\n>From quoted\r\n.leading dot\r\n"),
		[]byte("From: B <b@example.org>\r\nSubject: two\r\n\r\n>>From twice\r\nFrom\r\n"),
		[]byte("Subject: three\r\n\r\n" + strings.Repeat("From x\r\n", 700) + "\r\n"),
	}
}

func mboxBodies(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := deliver.SplitMbox(data)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	return out
}

func TestRetrieveMboxPOP3(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", mboxMessages())
	mbox := filepath.Join(t.TempDir(), "inbox.mbox")
	code, out, errs := runRetrieve(t, password, "-mbox", mbox, "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	if code != 0 || !strings.HasPrefix(out, "delivered=3 skipped=0 deleted=3 ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	got := mboxBodies(t, mbox)
	want := mboxMessages()
	if len(got) != len(want) {
		t.Fatalf("mbox holds %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d after un-quoting: %q, want %q", i, got[i], want[i])
		}
	}
	raw, _ := os.ReadFile(mbox)
	if !bytes.Contains(raw, []byte("\n>From the start\r\n>>From quoted\r\n")) || !bytes.HasPrefix(raw, []byte("From a@example.org ")) {
		t.Errorf("mbox is not mboxrd-quoted:\n%.300s", raw)
	}
	if _, err := os.Stat(mbox + ".unimail-state"); err != nil {
		t.Errorf("default state file for -mbox: %v", err)
	}
	if _, err := os.Stat(mbox + ".lock"); err == nil {
		t.Error("dotlock left behind")
	}
	if n := len(s.Messages("alice")); n != 0 {
		t.Fatalf("server holds %d", n)
	}
}

func TestRetrieveMboxIMAPKeepTwice(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", mboxMessages())
	mbox := filepath.Join(t.TempDir(), "inbox.mbox")
	args := []string{"-mbox", mbox, "-ca", writeCA(t, s.CertPEM()), "imaps://alice@" + s.Addr}
	if code, out, errs := runRetrieve(t, password, args...); code != 0 || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	s.Append("alice", "INBOX", []byte("Subject: four\r\n\r\nFrom later\r\n"))
	if code, out, errs := runRetrieve(t, password, args...); code != 0 || !strings.HasPrefix(out, "delivered=1 skipped=3 ") {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	want := append(mboxMessages(), []byte("Subject: four\r\n\r\nFrom later\r\n"))
	got := mboxBodies(t, mbox)
	if len(got) != len(want) {
		t.Fatalf("mbox holds %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// A locked mbox takes nothing: the messages stay on the server, exit 5.
func TestRetrieveMboxLocked(t *testing.T) {
	old := mboxLockTimeout
	mboxLockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { mboxLockTimeout = old })
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	mbox := filepath.Join(t.TempDir(), "inbox.mbox")
	os.WriteFile(mbox+".lock", nil, 0o600)
	code, out, errs := runRetrieve(t, password, "-mbox", mbox, "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	if code != exitUndeliver || !strings.HasPrefix(out, "delivered=0 ") || !strings.Contains(errs, "locked") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := len(s.Messages("alice")); n != 3 {
		t.Fatalf("server holds %d, want 3", n)
	}
	if fi, err := os.Stat(mbox); err != nil || fi.Size() != 0 {
		t.Fatalf("mbox: %v, %v", fi, err)
	}
}

// syncBuffer is a bytes.Buffer for a run that goes on in another goroutine.
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

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type watchRun struct {
	out, errs syncBuffer
	cancel    context.CancelFunc
	code      chan int
}

func startWatch(t *testing.T, pw string, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watchRun{cancel: cancel, code: make(chan int, 1)}
	go func() { w.code <- run(ctx, args, env(pw), &w.out, &w.errs) }()
	t.Cleanup(func() {
		cancel()
		<-w.code
	})
	return w
}

func (w *watchRun) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	select {
	case code := <-w.code:
		w.code <- code
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("retrieve -watch did not end after the cancel")
	}
	return -1
}

func TestWatchIMAPIdle(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	md := filepath.Join(t.TempDir(), "Mail")
	w := startWatch(t, password, "-watch", "-maildir", md, "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr)
	waitFor(t, "the first fetch", func() bool { return strings.Contains(w.out.String(), "delivered=3 ") })
	// Wait until the second connection idles, so that the new message is
	// noticed by IDLE rather than by the look before it.
	waitFor(t, "IDLE", func() bool {
		for _, c := range s.Commands() {
			if c.Name == "IDLE" {
				return true
			}
		}
		return false
	})
	late := []byte("Subject: late\r\n\r\narrived while watching\r\n")
	s.Append("alice", "INBOX", late)
	waitFor(t, "the message appended while watching", func() bool {
		return strings.Contains(w.out.String(), "delivered=1 skipped=3 ")
	})
	if code := w.stop(t); code != exitOK {
		t.Fatalf("exit %d after cancel, stderr %q", code, w.errs.String())
	}
	sameSet(t, maildirFiles(t, md), append(testMessages(), late))
	for _, line := range strings.Split(strings.TrimSpace(w.out.String()), "\n") {
		if !strings.HasPrefix(line, "delivered=") {
			t.Errorf("stdout line %q is not a summary line", line)
		}
	}
}

func TestWatchPOP3Interval(t *testing.T) {
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	mbox := filepath.Join(t.TempDir(), "mbox")
	w := startWatch(t, password, "-watch", "-interval", "20ms", "-retention", "delete", "-mbox", mbox, "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	waitFor(t, "the first fetch", func() bool { return strings.Contains(w.out.String(), "delivered=3 skipped=0 deleted=3 ") })
	waitFor(t, "a poll that finds nothing", func() bool { return strings.Contains(w.out.String(), "delivered=0 skipped=0 deleted=0 bytes=0\n") })
	late := []byte("Subject: late\r\n\r\nFrom the poll\r\n")
	s.AddMessage("alice", late)
	waitFor(t, "the message added while watching", func() bool {
		return strings.Contains(w.out.String(), "delivered=1 skipped=0 deleted=1 ")
	})
	if code := w.stop(t); code != exitOK {
		t.Fatalf("exit %d after cancel, stderr %q", code, w.errs.String())
	}
	got := mboxBodies(t, mbox)
	want := append(testMessages(), late)
	if len(got) != len(want) || !bytes.Equal(got[3], late) {
		t.Fatalf("mbox holds %q", got)
	}
	if n := len(s.Messages("alice")); n != 0 {
		t.Fatalf("server holds %d", n)
	}
}

// A failure that retrying cannot cure ends -watch with its exit status.
func TestWatchAuthFailure(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	w := startWatch(t, "wrong", "-watch", "-maildir", filepath.Join(t.TempDir(), "Mail"), "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr)
	select {
	case code := <-w.code:
		w.code <- code
		if code != exitAuth {
			t.Fatalf("exit %d, stderr %q", code, w.errs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("-watch kept running after a refused login")
	}
}

const token = "ya29.test-access-token-XYZ"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noSecrets(t *testing.T, where string, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, secret := range []string{token, "wrong-token", password} {
			if strings.Contains(o, secret) {
				t.Errorf("%s: output shows a secret: %q", where, o)
			}
		}
	}
}

func TestOAuth2IMAP(t *testing.T) {
	s := imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{token: "alice"}})
	s.AddUser("alice", "")
	s.SetMessages("alice", "INBOX", testMessages())
	ca := writeCA(t, s.CertPEM())
	tokFile := writeFile(t, "token", "\n  "+token+" \n")
	url := "imaps://alice@" + s.Addr

	trace := filepath.Join(t.TempDir(), "trace")
	code, out, errs := runRetrieve(t, "", "-v", "-trace", trace, "-oauth2-token-file", tokFile, "-maildir", filepath.Join(t.TempDir(), "A"), "-ca", ca, url)
	if code != 0 || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("token file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	tr, _ := os.ReadFile(trace)
	if !strings.Contains(string(tr), "AUTHENTICATE XOAUTH2") || !strings.Contains(errs, "level=DEBUG") {
		t.Errorf("no trace or no log: trace %q, stderr %q", tr, errs)
	}
	noSecrets(t, "token file", out, errs, string(tr))
	if !hasCommand(s.Commands(), "AUTHENTICATE XOAUTH2") {
		t.Errorf("XOAUTH2 was not used: %v", s.Commands())
	}

	code, out, errs = runRetrieve(t, "", "-oauth2-token-command", "printf '%s\\n' "+token, "-maildir", filepath.Join(t.TempDir(), "B"), "-ca", ca, "imaps://alice;AUTH=OAUTHBEARER@"+s.Addr)
	if code != 0 || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("token command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	noSecrets(t, "token command", out, errs)
	if !hasCommand(s.Commands(), "AUTHENTICATE OAUTHBEARER") {
		t.Errorf("OAUTHBEARER was not used: %v", s.Commands())
	}

	code, out, errs = runRetrieve(t, "", "-oauth2-token-file", writeFile(t, "bad", "wrong-token"), "-maildir", filepath.Join(t.TempDir(), "C"), "-ca", ca, url)
	if code != exitAuth {
		t.Fatalf("refused token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	noSecrets(t, "refused token", out, errs)
}

func hasCommand(cmds []imaptest.Command, prefix string) bool {
	for _, c := range cmds {
		if strings.HasPrefix(strings.TrimPrefix(c.Line, c.Tag+" "), prefix) {
			return true
		}
	}
	return false
}

func TestOAuth2POP3(t *testing.T) {
	s := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}})
	s.AddUser("alice", password)
	s.AddToken(token, "alice")
	s.SetMessages("alice", testMessages())
	ca := writeCA(t, s.CertPEM())
	md := filepath.Join(t.TempDir(), "Mail")

	// The command runs at each login: count them.
	calls := filepath.Join(t.TempDir(), "calls")
	cmd := fmt.Sprintf("echo x >> %s; echo %s", calls, token)
	trace := filepath.Join(t.TempDir(), "trace")
	code, out, errs := runRetrieve(t, "", "-v", "-trace", trace, "-oauth2-token-command", cmd, "-maildir", md, "-ca", ca, "pop3s://alice@"+s.Addr)
	if code != 0 || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	tr, _ := os.ReadFile(trace)
	if !strings.Contains(string(tr), "AUTH XOAUTH2") {
		t.Errorf("trace %q", tr)
	}
	noSecrets(t, "token command", out, errs, string(tr))
	if n, _ := os.ReadFile(calls); string(n) != "x\n" {
		t.Errorf("token command ran %q", n)
	}
	var xoauth bool
	for _, c := range s.Commands() {
		xoauth = xoauth || c.Name == "AUTH" && len(c.Args) > 0 && c.Args[0] == "XOAUTH2"
	}
	if !xoauth {
		t.Errorf("XOAUTH2 was not used: %v", s.Commands())
	}

	// A failing command: a clear error, its output not shown, exit 3.
	code, out, errs = runRetrieve(t, "", "-oauth2-token-command", "echo "+token+"; echo "+token+" >&2; exit 7", "-maildir", md, "-ca", ca, "pop3s://alice@"+s.Addr)
	if code != exitAuth || !strings.Contains(errs, "token command failed (exit status 7)") {
		t.Fatalf("failing command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	noSecrets(t, "failing command", out, errs)
	code, out, errs = runRetrieve(t, "", "-oauth2-token-command", "true", "-maildir", md, "-ca", ca, "pop3s://alice@"+s.Addr)
	if code != exitAuth || !strings.Contains(errs, "printed no token") {
		t.Fatalf("silent command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runRetrieve(t, "", "-oauth2-token-file", filepath.Join(t.TempDir(), "missing"), "-maildir", md, "-ca", ca, "pop3s://alice@"+s.Addr)
	if code != exitAuth || !strings.Contains(errs, "token file") {
		t.Fatalf("missing token file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	md, mbox := filepath.Join(dir, "Mail"), filepath.Join(dir, "mbox")
	tok := writeFile(t, "tok", token)
	url := "imaps://alice@127.0.0.1:1"
	cases := []struct {
		name string
		pw   string
		args []string
		want string
	}{
		{"both destinations", password, []string{"-maildir", md, "-mbox", mbox, url}, "exclude each other"},
		{"no destination", password, []string{url}, "-maildir or -mbox"},
		{"token and password file", "", []string{"-mbox", mbox, "-oauth2-token-file", tok, "-password-file", tok, url}, "exclude each other"},
		{"token and $UNIMAIL_PASSWORD", password, []string{"-mbox", mbox, "-oauth2-token-file", tok, url}, "UNIMAIL_PASSWORD"},
		{"two token sources", "", []string{"-mbox", mbox, "-oauth2-token-file", tok, "-oauth2-token-command", "true", url}, "exclude each other"},
		{"token with PLAIN", "", []string{"-mbox", mbox, "-oauth2-token-file", tok, "imaps://alice;AUTH=PLAIN@127.0.0.1:1"}, "XOAUTH2 or ;AUTH=OAUTHBEARER"},
		{"bad interval", password, []string{"-mbox", mbox, "-watch", "-interval", "0s", url}, "-interval"},
		{"negative batch", password, []string{"-mbox", mbox, "-batch", "-1", url}, "-batch"},
		{"unknown flag", password, []string{"-mbox", mbox, "-password", "x", url}, "flag provided but not defined"},
	}
	for _, c := range cases {
		code, out, errs := runRetrieve(t, c.pw, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", c.name, code, out, errs)
		}
		noSecrets(t, c.name, errs)
	}
}

func TestHelp(t *testing.T) {
	code, out, errs := runRetrieve(t, "", "-help")
	if code != exitOK || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"-maildir", "-mbox", "-state", "-retention", "-ca", "-insecure-cleartext", "-max-size", "-batch", "-password-file",
		"-oauth2-token-file", "-oauth2-token-command", "-timeout", "-watch", "-interval", "-q", "-v", "-trace",
		"pop3s://", "pop3://", "imaps://", "imap://", ";AUTH=", "UNIMAIL_PASSWORD",
		"0  success", "1  the run failed", "2  bad usage", "3  authentication failed", "4  TLS failed", "5  some messages",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("-help does not mention %q", want)
		}
	}
}

// fakeTerminal makes run take w for a terminal of cols columns.
func fakeTerminal(t *testing.T, w io.Writer, cols int) {
	old := terminalWidth
	terminalWidth = func(x io.Writer) (int, bool) {
		if x == w {
			return cols, true
		}
		return 0, false
	}
	t.Cleanup(func() { terminalWidth = old })
}

func TestProgressBar(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	ca := writeCA(t, s.CertPEM())
	url := "imaps://alice@" + s.Addr

	// On a (fake) terminal: the bar, then its final state on a line of
	// its own; the summary alone on stdout.
	var out, errb bytes.Buffer
	fakeTerminal(t, &errb, 100)
	code := run(t.Context(), []string{"-maildir", filepath.Join(t.TempDir(), "A"), "-ca", ca, url}, env(password), &out, &errb)
	if code != 0 || out.String() != "delivered=3 skipped=0 deleted=0 bytes=5072\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	e := errb.String()
	if !strings.Contains(e, "\r3/3 msgs [========================================] 100% 5.0 KiB/5.0 KiB") || !strings.HasSuffix(e, "\x1b[K\n") || !strings.Contains(e, "0/3 msgs") {
		t.Fatalf("no bar on the terminal: %q", e)
	}
	last := e[strings.LastIndex(e, "\r")+1:]
	if !strings.Contains(last, " in ") || len(strings.TrimSuffix(last, "\x1b[K\n")) > 99 {
		t.Errorf("final state %q", last)
	}

	// -q: no bar even on a terminal.
	out.Reset()
	errb.Reset()
	code = run(t.Context(), []string{"-q", "-maildir", filepath.Join(t.TempDir(), "B"), "-ca", ca, url}, env(password), &out, &errb)
	if code != 0 || errb.Len() != 0 || !strings.HasPrefix(out.String(), "delivered=3 ") {
		t.Fatalf("-q: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	// Not a terminal (a regular file): no bar.
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out.Reset()
	code = run(t.Context(), []string{"-maildir", filepath.Join(t.TempDir(), "C"), "-ca", ca, url}, env(password), &out, f)
	got, _ := os.ReadFile(f.Name())
	if code != 0 || len(got) != 0 || !strings.HasPrefix(out.String(), "delivered=3 ") {
		t.Fatalf("non-terminal: exit %d, stdout %q, stderr %q", code, out.String(), got)
	}
}

// -v logs the drivers' and the Fetcher's events, -trace writes the
// protocol, and neither shows the password.
func TestVerboseAndTrace(t *testing.T) {
	pop := poptest.NewTLSServer(t, nil)
	pop.AddUser("alice", password)
	pop.SetMessages("alice", testMessages())
	im := imaptest.NewTLSServer(t, nil)
	im.AddUser("alice", password)
	im.SetMessages("alice", "INBOX", testMessages())
	for _, c := range []struct{ url, ca, login string }{
		{"pop3s://alice@" + pop.Addr, writeCA(t, pop.CertPEM()), "C: AUTH PLAIN"},
		{"imaps://alice;AUTH=LOGIN@" + im.Addr, writeCA(t, im.CertPEM()), "LOGIN "},
	} {
		trace := filepath.Join(t.TempDir(), "trace")
		code, out, errs := runRetrieve(t, password, "-v", "-trace", trace, "-maildir", filepath.Join(t.TempDir(), "Mail"), "-ca", c.ca, c.url)
		if code != 0 || !strings.HasPrefix(out, "delivered=3 ") || !strings.Contains(errs, "level=DEBUG") || !strings.Contains(errs, "level=INFO msg=delivered") {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", c.url, code, out, errs)
		}
		tr, err := os.ReadFile(trace)
		if err != nil || !strings.Contains(string(tr), c.login) || !strings.Contains(string(tr), "S: ") {
			t.Fatalf("%s: trace %q, %v", c.url, tr, err)
		}
		noSecrets(t, c.url, errs, string(tr))
		// The message bodies are not in the trace either.
		if strings.Contains(string(tr), "leading dot") {
			t.Errorf("%s: the trace holds a message body", c.url)
		}
	}
}

func TestRenderBar(t *testing.T) {
	p := progressFor(300, 3<<20, 120, 1<<20)
	for _, cols := range []int{20, 40, 60, 80, 200} {
		line := renderBar(p, 1<<20, 512<<10, eta(p, 1<<20, 512<<10, 0), 2*time.Second, false, cols)
		if len(line) > cols-1 {
			t.Errorf("%d columns: line of %d: %q", cols, len(line), line)
		}
		if !strings.HasPrefix(line, "120/300 msgs") {
			t.Errorf("%d columns: %q", cols, line)
		}
	}
	if line := renderBar(p, 1<<20, 512<<10, eta(p, 1<<20, 512<<10, 0), 2*time.Second, false, 100); !strings.Contains(line, " 33% 1.0 MiB/3.0 MiB 512 KiB/s ETA 4s") || !strings.Contains(line, "[=============>") {
		t.Errorf("line %q", line)
	}
	// Many small messages: the message rate sets the time left.
	if d := eta(p, 1<<20, 512<<10, 10); d != 18*time.Second {
		t.Errorf("eta by messages: %v, want 18s", d)
	}
	// Announced sizes that fall short never show 100% early.
	if line := renderBar(progressFor(2, 100, 1, 100), 150, 0, -1, time.Second, false, 100); !strings.Contains(line, " 99% ") || !strings.Contains(line, "ETA --") {
		t.Errorf("line %q", line)
	}
	if line := renderBar(progressFor(2, 100, 2, 104), 104, 52, 0, 2*time.Second, true, 100); !strings.Contains(line, "100% 104 B/100 B 52 B/s in 2s") {
		t.Errorf("final line %q", line)
	}
}

func progressFor(msgs, size, doneMsgs, doneBytes int64) mailaccess.Progress {
	return mailaccess.Progress{Messages: msgs, Bytes: size, DoneMessages: doneMsgs, DoneBytes: doneBytes}
}

// -watch rides out a failure that may pass, and says so on stderr.
func TestWatchRetriesTemporaryFailure(t *testing.T) {
	var refused sync.Once
	s := poptest.NewTLSServer(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		var f poptest.Fault
		if c.Seq == 0 {
			refused.Do(func() { f.Err = "[SYS/TEMP] too busy, try later" })
		}
		return f
	}})
	s.AddUser("alice", password)
	s.SetMessages("alice", testMessages())
	w := startWatch(t, password, "-watch", "-interval", "1h", "-maildir", filepath.Join(t.TempDir(), "Mail"), "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@"+s.Addr)
	waitFor(t, "the fetch after the refused connection", func() bool { return strings.Contains(w.out.String(), "delivered=3 ") })
	if code := w.stop(t); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, w.errs.String())
	}
	if e := w.errs.String(); !strings.Contains(e, "level=WARN") || !strings.Contains(e, "too busy") {
		t.Fatalf("stderr %q does not report the failure", e)
	}
}
