package popwire

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTraceRedactsStructurally checks the redaction that works without any
// registered secret: PASS, APOP, AUTH initial responses and the lines of
// a SASL exchange.
func TestTraceRedactsStructurally(t *testing.T) {
	var out strings.Builder
	w := serveDuplex(t, "+OK hi\r\n+ Y2hhbGxlbmdl\r\n-ERR [AUTH] no\r\n"+"a\r\n..b\r\n.\r\n")
	w.SetTrace(&out)
	for _, l := range []string{"USER alice", "PASS pw with spaces", "apop alice 0123456789abcdef", "AUTH PLAIN AGFsaWNlAHB3", "AUTH XOAUTH2"} {
		if err := w.WriteLine(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.ReadStatus(); err != nil {
		t.Fatal(err)
	}
	w.SetSASL(true)
	if _, err := w.ReadLine(MaxStatusLine); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"c2VjcmV0", "*"} {
		if err := w.WriteLine(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.ReadStatus(); err != nil {
		t.Fatal(err)
	}
	w.SetSASL(false)
	if _, err := io.Copy(io.Discard, w.DotReader(1<<20, "test")); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"C: USER alice",
		"C: PASS [REDACTED]",
		"C: apop alice [REDACTED]",
		"C: AUTH PLAIN [REDACTED]",
		"C: AUTH XOAUTH2",
		"S: +OK hi",
		"S: + [REDACTED]",
		"C: [REDACTED]",
		"C: *",
		"S: -ERR [AUTH] no",
		"S: [message body, 7 octets]",
	}, "\n") + "\n"
	if out.String() != want {
		t.Fatalf("trace:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestTraceSecretsAndEscapes(t *testing.T) {
	var out strings.Builder
	w := serve(t, "-ERR wrong password hunter2\x1b\r\n"+strings.Repeat("z", 3000)+"\r\n", false)
	w.SetTrace(&out)
	w.AddSecret("hunter2", "")
	if _, err := w.ReadStatus(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadLine(MaxListLine); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if lines[0] != `S: -ERR wrong password [REDACTED]\x1b` {
		t.Fatalf("line %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], "... (3000 octets)") || len(lines[1]) > maxTraceLine+40 {
		t.Fatalf("long line traced as %d octets: %q...", len(lines[1]), lines[1][:40])
	}
}

func TestTraceIncompleteBody(t *testing.T) {
	var out strings.Builder
	w := serve(t, "abc\r\nde", true)
	w.SetTrace(&out)
	if _, err := io.Copy(io.Discard, w.DotReader(1<<20, "test")); err == nil {
		t.Fatal("truncated body accepted")
	}
	if out.String() != "S: [message body, 5 octets, incomplete]\n" {
		t.Fatalf("trace %q", out.String())
	}
}

// serveDuplex is serve with a server that reads what the client sends
// while it writes data.
func serveDuplex(t *testing.T, data string) *Wire {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() { _, _ = io.Copy(io.Discard, server) }()
	go func() { _, _ = io.WriteString(server, data) }()
	return New(client, 5*time.Second)
}
