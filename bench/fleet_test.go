package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
)

// fleetWorkerMain is the test binary as a fleet worker process.
func fleetWorkerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var w FleetWorker
	if err := json.NewDecoder(os.Stdin).Decode(&w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := RunFleetWorker(ctx, w, os.Getenv(PasswordEnv), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestParseFleetProfile(t *testing.T) {
	ps, err := ParseProfiles("fleet", nil)
	if err != nil || len(ps) != 1 || !ps[0].Fleet || ps[0].Name != ProfileFleet {
		t.Fatalf("ParseProfiles(fleet) = %+v, %v", ps, err)
	}
	all, err := ParseProfiles("all", DefaultIncrementalSizes)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Fleet {
			t.Fatal("all includes the fleet profile")
		}
	}
	p := FleetPush{Accounts: 2, Baseline: 10 << 20, Held: 11 << 20, Delays: []time.Duration{3, 1, 2, 4}}
	if p.PerAccount() != 512<<10 || p.Delay(0.5) != 2 || p.Delay(0.99) != 4 || p.Delay(1) != 4 {
		t.Errorf("PerAccount %d, p50 %v, p99 %v", p.PerAccount(), p.Delay(0.5), p.Delay(0.99))
	}
}

// TestRunnerTinyFleet runs the fleet profile's machinery on 20 accounts:
// a sweep and a sweep with nothing new on SQLite with one worker process
// and on PostgreSQL (when installed) with three, each account taking its
// one message once, and 5 accounts held in IDLE that take every delivered
// message; the report has the profile's tables.
func TestRunnerTinyFleet(t *testing.T) {
	if DovecotPath() == "" && os.Getenv(dovecottest.RequireEnv) != "1" {
		t.Skip("Dovecot is not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(testFleetWorkerEnv, "1")
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	r := &Runner{
		Exe:           exe,
		Launcher:      []string{build(t, t.TempDir(), "bench/cmd/spawn")},
		WorkDir:       t.TempDir(),
		FleetAccounts: 20,
		FleetPush:     5,
		FleetCases:    []string{"sqlite/1", "postgres/3"},
	}
	var log bytes.Buffer
	r.Log = &log
	res, err := r.Run(t.Context(), fleetProfile())
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	fr := res.Fleet
	if fr == nil || len(fr.Sweeps) == 0 || fr.Push == nil {
		t.Fatalf("result %+v\n%s", fr, log.String())
	}
	for _, s := range fr.Sweeps {
		if s.Sweep <= 0 || s.NoNew <= 0 || s.MaxRSS <= 0 || s.WorkerCPU <= 0 {
			t.Errorf("%s/%d: %+v", s.DB, s.Procs, s)
		}
	}
	if p := fr.Push; p.Accounts != 5 || p.Delivered != 5 || p.Received != 5 || len(p.Delays) != 5 || p.Held <= 0 || p.MaxRSS <= 0 {
		t.Errorf("push: %+v", p)
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, CollectMeta("test", 1), []ProfileResult{res}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## fleet: 20 IMAP accounts", "| sqlite | 1 |", "| 5 |", "every case of the fleet profile runs once"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, md.String())
		}
	}
	if !strings.Contains(md.String(), "| postgres | 3 |") && fr.Postgres != "" {
		t.Errorf("report lacks PostgreSQL:\n%s", md.String())
	}
}
