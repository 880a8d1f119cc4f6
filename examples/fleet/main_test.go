package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that run writes while the test reads.
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

// TestFleetDemo runs the demonstration briefly on its embedded default
// (an SQLite file in a temporary directory): the table shows the
// accounts and messages fetched without errors, /metrics serves the
// fleet's counters, and the run stops cleanly.
func TestFleetDemo(t *testing.T) {
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"-accounts", "40", "-every", "300ms", "-duration", "8s", "-table", "500ms", "-metrics", "127.0.0.1:0"}, &out, &errOut)
	}()
	addr := regexp.MustCompile(`metrics at (http://\S+/metrics)`)
	deadline := time.Now().Add(time.Minute)
	for !addr.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no metrics address in the output:\n%s%s", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	url := addr.FindStringSubmatch(out.String())[1]
	var metrics string
	for metrics == "" || !strings.Contains(metrics, "unimail_fleet_messages_total") || strings.Contains(metrics, "unimail_fleet_messages_total 0\n") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never counted a message:\n%s", metrics)
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"unimail_fleet_accounts 40", "unimail_fleet_accounts_stopped 0", "unimail_fleet_runs_total", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, errOut.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the demonstration did not stop")
	}
	s := out.String()
	for _, want := range []string{"40 accounts on POP3 127.0.0.1:", "time     accounts  running    fetched  errors", "stopped\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// The last row: every account, messages fetched, no errors, none
	// stopped.
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for strings.HasPrefix(lines[len(lines)-2], "errors by kind") {
		lines = append(lines[:len(lines)-2], lines[len(lines)-1])
	}
	last := strings.Fields(lines[len(lines)-2])
	if len(last) != 7 || last[1] != "40" || last[4] != "0" || last[6] != "0" {
		t.Fatalf("last row %q, want 40 accounts, no errors, none stopped:\n%s", lines[len(lines)-2], s)
	}
	if n, _ := strconv.Atoi(last[3]); n < 40 {
		t.Errorf("fetched %d messages, want at least one per account (40)", n)
	}
}

// TestUsage: flags that cannot work are refused before anything starts.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-worker"}, {"-every", "1ms"}, {"-accounts", "-1"}, {"extra"}, {"-nosuchflag"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
