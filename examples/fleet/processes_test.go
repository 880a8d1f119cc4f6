package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestProcessesSharePostgres builds the program and runs it as two
// processes on one PostgreSQL database, the first registering the
// accounts and the second a -worker: both fetch messages, and neither
// reports an error.
func TestProcessesSharePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	dsn := pgtest.Shared(t).NewDatabase(t)
	bin := filepath.Join(t.TempDir(), "fleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := func(args ...string) (*exec.Cmd, *syncBuffer) {
		out := &syncBuffer{}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	first, out1 := start("-db", dsn, "-accounts", "40", "-every", "300ms", "-duration", "14s", "-table", "2s")
	// The worker starts once the first process has registered the
	// accounts, and stops first, so that the servers outlive it.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out1.String(), "accounts on POP3") {
		if time.Now().After(deadline) {
			t.Fatalf("the first process registered no accounts:\n%s", out1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, out2 := start("-db", dsn, "-worker", "-duration", "9s", "-table", "2s")
	if err := second.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, out2)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first process: %v\n%s", err, out1)
	}
	for name, out := range map[string]string{"first": out1.String(), "worker": out2.String()} {
		if strings.Contains(out, "xxxxx") || strings.Contains(out, "postgres://") {
			t.Errorf("%s shows the DSN:\n%s", name, out)
		}
		if !strings.Contains(out, "fleet in PostgreSQL") || !strings.Contains(out, "stopped\n") {
			t.Errorf("%s's output:\n%s", name, out)
		}
		row := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\s+(\d+)\s+\d+\s+(\d+)\s+(\d+)\s+\S+\s+(\d+)\s*$`).FindAllStringSubmatch(out, -1)
		if len(row) == 0 {
			t.Fatalf("%s printed no table:\n%s", name, out)
		}
		last := row[len(row)-1]
		fetched, _ := strconv.Atoi(last[2])
		if last[1] != "40" || fetched == 0 || last[3] != "0" || last[4] != "0" {
			t.Errorf("%s's last row %q: want 40 accounts, messages fetched, no errors, none stopped:\n%s", name, last[0], out)
		}
	}
}
