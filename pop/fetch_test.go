package pop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// recordingConn keeps a copy of every Write, one entry per call.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) Writes() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func TestFetcherDeleteAfterFetchOneRoundTrip(t *testing.T) {
	const n = 3000
	s := setup(t, nil)
	for i := range n {
		s.AddMessage(user, fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i))
	}
	o := opts(s, "")
	o.Security = mailaccess.SecurityInsecureCleartext
	var rc *recordingConn
	o.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rc = &recordingConn{Conn: c}
		return rc, nil
	}
	mb := dial(t, s, o)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch}
	rep, err := f.Fetch(t.Context(), mb, func(_ context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err != nil || rep.Delivered != n || rep.Deleted != n {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// Every DELE left in one write, which held nothing else.
	var deleWrites []string
	for _, w := range rc.Writes() {
		if bytes.Contains(w, []byte("DELE ")) {
			deleWrites = append(deleWrites, string(w))
		}
	}
	if len(deleWrites) != 1 {
		t.Fatalf("DELEs in %d writes, want 1", len(deleWrites))
	}
	if got := strings.Count(deleWrites[0], "DELE "); got != n || strings.Count(deleWrites[0], "\r\n") != n {
		t.Fatalf("the DELE write holds %d DELEs and %d lines, want %d", got, strings.Count(deleWrites[0], "\r\n"), n)
	}
	// The server saw them all, and QUIT after them.
	cmds := names(commands(t, s))
	dele := 0
	for _, c := range cmds {
		if c == "DELE" {
			dele++
		}
	}
	if dele != n || cmds[len(cmds)-1] != "QUIT" {
		t.Fatalf("server saw %d DELEs, last command %s", dele, cmds[len(cmds)-1])
	}
	if left := len(s.UIDs(user)); left != 0 {
		t.Fatalf("%d messages left on the server", left)
	}
}

func TestFetcherDeleteWithoutPipelining(t *testing.T) {
	s := setup(t, &poptest.Config{NoPipelining: true})
	for i := range 5 {
		s.AddMessage(user, fmt.Appendf(nil, "m%d\r\n", i))
	}
	mb := dial(t, s, opts(s, ""))
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch}
	rep, err := f.Fetch(t.Context(), mb, func(_ context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err != nil || rep.Deleted != 5 || len(s.UIDs(user)) != 0 {
		t.Fatalf("report %+v, %v, %d left", rep, err, len(s.UIDs(user)))
	}
}

// rssEnv names the environment of the child process of TestPeakRSS100MiB.
const (
	rssEnv     = "UNIMAIL_POP_RSS"      // "1": run TestPeakRSS100MiB
	rssAddrEnv = "UNIMAIL_POP_RSS_ADDR" // set in the child: the POP3S address
	rssCAEnv   = "UNIMAIL_POP_RSS_CA"   // set in the child: the CA's PEM file
	rssSize    = 100 << 20              // the message's size
)

// TestPeakRSS100MiB measures the peak resident memory of a process that
// fetches one 100 MiB message from Dovecot through the Fetcher, with a
// handler that discards it. It runs the fetch in a child process, so that
// the message generated for Dovecot does not count. It is slow (a few
// seconds), so it runs only with UNIMAIL_POP_RSS=1:
//
//	UNIMAIL_POP_RSS=1 go test ./pop -run PeakRSS -v
func TestPeakRSS100MiB(t *testing.T) {
	if os.Getenv(rssEnv) != "1" {
		t.Skip("set " + rssEnv + "=1 to measure the peak RSS of a 100 MiB fetch")
	}
	srv := dovecottest.Start(t, nil)
	srv.Seed(t, "alice", "INBOX", [][]byte{benchMessage(0, rssSize)})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestPeakRSSChild$", "-test.v")
	cmd.Env = append(os.Environ(), rssAddrEnv+"="+srv.POP3SAddr, rssCAEnv+"="+ca, rssEnv+"=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peak, base int64
	for _, l := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(l, "PEAK-RSS-KIB "); ok {
			f := strings.Fields(rest)
			peak, _ = strconv.ParseInt(f[0], 10, 64)
			base, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if peak == 0 {
		t.Fatalf("child printed no measure:\n%s", out)
	}
	t.Logf("peak RSS %.1f MiB (%.2fx the message), %.1f MiB before the fetch", float64(peak)/1024, float64(peak<<10)/rssSize, float64(base)/1024)
	if peak<<10 > rssSize*5/2 {
		t.Fatalf("peak RSS %d KiB is more than 2.5x the message", peak)
	}
}

// TestPeakRSSChild is the child process of TestPeakRSS100MiB.
func TestPeakRSSChild(t *testing.T) {
	addr := os.Getenv(rssAddrEnv)
	if addr == "" {
		t.Skip("only run by TestPeakRSS100MiB")
	}
	pem, err := os.ReadFile(os.Getenv(rssCAEnv))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	// VmHWM, not getrusage: Linux keeps ru_maxrss across exec, so it
	// would count the parent's memory.
	base := vmHWM(t)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	got, err := driverFetch(t.Context(), addr, cfg)
	if err != nil || got != 1 {
		t.Fatalf("%d messages, %v", got, err)
	}
	fmt.Printf("PEAK-RSS-KIB %d %d\n", vmHWM(t), base)
}

// vmHWM returns the peak resident set size of this process in KiB.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no VmHWM in /proc/self/status")
	return 0
}
