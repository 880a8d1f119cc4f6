//go:build linux

package imap_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// TestPeakRSS100MiB fetches one message of 100 MiB from Dovecot, through
// the Fetcher, in a child process, and checks that the child's peak
// resident set stays at most 32 MiB: the message streams in chunks and is
// never held whole. It seeds 100 MiB, so it runs only when
// UNIMAIL_IMAP_RSS=1:
//
//	UNIMAIL_IMAP_RSS=1 go test ./imap -run PeakRSS -v
func TestPeakRSS100MiB(t *testing.T) {
	if os.Getenv("UNIMAIL_IMAP_RSS_CHILD") != "" {
		rssChild(t)
		return
	}
	if os.Getenv("UNIMAIL_IMAP_RSS") != "1" {
		t.Skip("set UNIMAIL_IMAP_RSS=1 to run")
	}
	srv := dovecottest.Start(t, nil)
	var b strings.Builder
	b.WriteString("From: big@example.com\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for b.Len() < 100<<20 {
		b.WriteString(line)
	}
	raw := []byte(b.String())
	b.Reset()
	sum := sha256.Sum256(raw)
	srv.Seed(t, dovecotUser, "INBOX", [][]byte{raw})
	raw = nil

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestPeakRSS100MiB$", "-test.v")
	cmd.Env = append(os.Environ(),
		"UNIMAIL_IMAP_RSS_CHILD=1",
		"UNIMAIL_IMAP_RSS_ADDR="+srv.IMAPSAddr,
		"UNIMAIL_IMAP_RSS_CA="+ca,
		"UNIMAIL_IMAP_RSS_SUM="+hex.EncodeToString(sum[:]),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var kib int64 = -1
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "maxrss-kib "); ok {
			kib, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if kib < 0 {
		t.Fatalf("the child reported no peak RSS:\n%s", out)
	}
	t.Logf("peak RSS of the fetching process: %.1f MiB", float64(kib)/1024)
	if kib > 32<<10 {
		t.Fatalf("peak RSS %d KiB, want at most 32 MiB", kib)
	}
}

// rssChild is the fetching side of TestPeakRSS100MiB.
func rssChild(t *testing.T) {
	pem, err := os.ReadFile(os.Getenv("UNIMAIL_IMAP_RSS_CA"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	mb, err := imap.Dial(context.Background(), os.Getenv("UNIMAIL_IMAP_RSS_ADDR"), &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: dovecotUser, Password: dovecotPassword},
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	rep, err := (&mailaccess.Fetcher{}).Fetch(context.Background(), mb, func(ctx context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(h, m.Body)
		return err
	})
	if err != nil || rep.Delivered != 1 {
		t.Fatalf("Fetch = %+v, %v", rep, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != os.Getenv("UNIMAIL_IMAP_RSS_SUM") {
		t.Fatal("the message did not come back byte-exact")
	}
	// VmHWM is the peak of this process image: unlike getrusage's
	// ru_maxrss, it does not carry the parent's peak across exec.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			fmt.Printf("maxrss-kib %s\n", strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
}
