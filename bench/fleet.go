package bench

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// The fleet profile: many accounts on one Dovecot, kept fetched by package
// fleet in worker processes of their own.
const (
	ProfileFleet = "fleet"
	// FleetAccounts is the number of accounts of a sweep, each holding
	// one new message; FleetPushAccounts the number held in push mode
	// (IMAP IDLE), and FleetDeliveries the messages delivered to them
	// one at a time.
	FleetAccounts     = 10000
	FleetPushAccounts = 1000
	FleetDeliveries   = 200
	// FleetHostLimit and FleetWorkers are the worker processes'
	// Options.HostLimit and Options.Workers in the sweeps (chosen by
	// measuring on a 2-CPU machine; a real provider wants the default
	// HostLimit of 8).
	FleetHostLimit = 32
	FleetWorkers   = 64
	// FleetMessage is the size of each account's message.
	FleetMessage = 2000
	// fleetPushPeriod is the push worker's PushPeriod: longer than the
	// measurement.
	fleetPushPeriod = 10 * time.Minute
	// fleetDeliveryGap is the least time between two deliveries.
	fleetDeliveryGap = 25 * time.Millisecond
)

// fleetProfile is the fleet profile.
func fleetProfile() Profile {
	return Profile{
		Name:        ProfileFleet,
		Description: fmt.Sprintf("%d IMAP accounts on one Dovecot, one new message of %d octets each, kept fetched by package fleet in worker processes", FleetAccounts, FleetMessage),
		Protocols:   []string{IMAP},
		Fleet:       true,
	}
}

// FleetSweep is one case of the fleet profile: a database, a number of
// worker processes, and the sweeps they made.
type FleetSweep struct {
	// DB is "sqlite" or "postgres"; Procs the number of worker
	// processes.
	DB    string `json:"db"`
	Procs int    `json:"procs"`
	// Add is the time it took to register every account (Fleet.Add, not
	// part of a sweep).
	Add time.Duration `json:"add_ns"`
	// Sweep is the wall time from the first RunNow to the moment every
	// account had recorded a success after it, each account taking its
	// one new message; NoNew the same again with nothing new.
	Sweep time.Duration `json:"sweep_ns"`
	NoNew time.Duration `json:"no_new_ns"`
	// RunNow is the part of Sweep that calling RunNow on every account
	// took.
	RunNow time.Duration `json:"run_now_ns"`
	// MaxRSS is the largest peak RSS of the worker processes.
	MaxRSS int64 `json:"max_rss"`
	// WorkerCPU is the CPU time (user and system) of the worker
	// processes, and DovecotCPU that of Dovecot's processes, over both
	// sweeps.
	WorkerCPU  time.Duration `json:"worker_cpu_ns"`
	DovecotCPU time.Duration `json:"dovecot_cpu_ns"`
	// LoadBefore and LoadAfter are the one-minute load average before
	// the sweeps and after them.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
}

// FleetPush is the push case of the fleet profile.
type FleetPush struct {
	// Accounts is the number of accounts held in IDLE by one worker
	// process.
	Accounts int `json:"accounts"`
	// Hold is the time from the first RunNow until every account's IDLE
	// was seen on the server.
	Hold time.Duration `json:"hold_ns"`
	// Baseline is the worker's resident size (VmRSS) when it works no
	// account, Held its resident size when it holds every account, and
	// MaxRSS its peak RSS over its whole life.
	Baseline int64 `json:"baseline_rss"`
	Held     int64 `json:"held_rss"`
	MaxRSS   int64 `json:"max_rss"`
	// Delivered and Received count the messages delivered with doveadm
	// save and those the handler took; Delays are, in delivery order,
	// the time from doveadm save's return to the handler's taking of the
	// message.
	Delivered int             `json:"delivered"`
	Received  int             `json:"received"`
	Delays    []time.Duration `json:"delays_ns"`
}

// PerAccount is the worker's resident size per held account.
func (p FleetPush) PerAccount() int64 {
	if p.Accounts == 0 {
		return 0
	}
	return (p.Held - p.Baseline) / int64(p.Accounts)
}

// Delay returns the q-quantile (0 to 1) of the delays.
func (p FleetPush) Delay(q float64) time.Duration {
	if len(p.Delays) == 0 {
		return 0
	}
	s := slices.Clone(p.Delays)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// FleetResult is what the fleet profile measured.
type FleetResult struct {
	// Accounts is the number of accounts of the sweeps.
	Accounts int `json:"accounts"`
	// HostLimit and Workers are the worker processes' options in the
	// sweeps.
	HostLimit int `json:"host_limit"`
	Workers   int `json:"workers"`
	// Seed is the time it took to deliver every account's message into
	// its Maildir.
	Seed   time.Duration `json:"seed_ns"`
	Sweeps []FleetSweep  `json:"sweeps"`
	Push   *FleetPush    `json:"push,omitempty"`
	// Postgres is the PostgreSQL version ("" when it was not measured).
	Postgres string `json:"postgres,omitempty"`
}

// fleetDovecotConfig raises Dovecot's limits for thousands of sessions:
// login processes in high-performance mode (each serves many connections
// and proxies their TLS), enough imap processes for every held
// connection, and enough clients for the auth and anvil services.
const fleetDovecotConfig = `default_process_limit = 3000
default_client_limit = 20000
service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = 5000
  vsz_limit = 1G
}
service imap {
  process_limit = 3000
  service_count = 0
  process_min_avail = 16
}
`

// fleetUser is the name of account i's user.
func fleetUser(i int) string { return fmt.Sprintf("u%05d", i) }

// fleetWorkerEnv is where a fleet worker process reads the password from.
const fleetWorkerEnv = PasswordEnv

// runFleet measures the fleet profile.
func (r *Runner) runFleet(ctx context.Context, p Profile) (ProfileResult, error) {
	res := ProfileResult{Name: p.Name, Description: p.Description, Runs: 1}
	n := r.FleetAccounts
	if n <= 0 {
		n = FleetAccounts
	}
	nPush := min(r.FleetPush, n)
	if r.FleetPush == 0 {
		nPush = min(FleetPushAccounts, n)
	}
	fr := &FleetResult{Accounts: n, HostLimit: cmpOr(r.FleetHostLimit, FleetHostLimit), Workers: FleetWorkers}
	fr.Workers = max(fr.Workers, 2*fr.HostLimit)
	res.Fleet = fr
	res.Messages = n
	res.LoadBefore = LoadAverage()
	if p.Description != "" && n != FleetAccounts {
		res.Description = strings.Replace(p.Description, strconv.Itoa(FleetAccounts), strconv.Itoa(n), 1)
	}

	users := make(map[string]string, n)
	for i := range n {
		users[fleetUser(i)] = benchPassword
	}
	t0 := time.Now()
	srv, err := startDovecot(&dovecottest.Options{Users: users, ExtraConfig: fleetDovecotConfig})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	r.logf("%s: Dovecot with %d users started in %.2fs", p.Name, n, time.Since(t0).Seconds())
	t0 = time.Now()
	for i := range n {
		if err := srv.Append(fleetUser(i), "INBOX", Message(i, FleetMessage)); err != nil {
			return res, err
		}
	}
	fr.Seed = time.Since(t0)
	res.Seed = fr.Seed
	res.Bytes = int64(n * FleetMessage)
	r.logf("%s: %d messages delivered into the Maildirs in %.2fs", p.Name, n, fr.Seed.Seconds())

	work, err := os.MkdirTemp(r.WorkDir, "run-fleet-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM(), 0o644); err != nil {
		return res, err
	}
	fm := &fleetMeasure{r: r, srv: srv, work: work, caFile: caFile, n: n, hostLimit: fr.HostLimit, workers: fr.Workers}
	if f, err := r.Floor(ctx); err == nil {
		res.Floor = f.MaxRSS
	}

	pg, err := startPostgres()
	if err != nil && !errors.Is(err, errNoPostgres) {
		return res, err
	}
	if pg != nil {
		defer pg.Close()
		fr.Postgres = pg.Version
	} else {
		r.logf("%s: PostgreSQL is not installed: only SQLite is measured (%v)", p.Name, err)
	}
	cases := []struct {
		db    string
		procs int
	}{{"sqlite", 1}, {"postgres", 1}, {"postgres", 3}}
	for _, c := range cases {
		if c.db == "postgres" && pg == nil {
			continue
		}
		if len(r.FleetCases) > 0 && !slices.Contains(r.FleetCases, fmt.Sprintf("%s/%d", c.db, c.procs)) {
			continue
		}
		s, err := fm.sweep(ctx, c.db, c.procs, pg)
		if err != nil {
			return res, fmt.Errorf("%s: %s with %d process(es): %w", p.Name, c.db, c.procs, err)
		}
		fr.Sweeps = append(fr.Sweeps, s)
	}
	if nPush > 0 {
		push, err := fm.push(ctx, nPush)
		if err != nil {
			return res, fmt.Errorf("%s: push: %w", p.Name, err)
		}
		fr.Push = &push
	}
	res.LoadAfter = LoadAverage()
	return res, nil
}

// fleetMeasure runs the cases of the fleet profile.
type fleetMeasure struct {
	r      *Runner
	srv    *Server
	work   string
	caFile string
	n      int
	seq    int
	// hostLimit and workers are the worker processes' options.
	hostLimit, workers int
}

// cpuProfile is the path of a worker's CPU profile in the Runner's
// CPUProfileDir, or "" for none.
func (m *fleetMeasure) cpuProfile(name string) string {
	if m.r.CPUProfileDir == "" {
		return ""
	}
	return filepath.Join(m.r.CPUProfileDir, name)
}

// database makes a fresh database: a new SQLite file on the work
// directory (tmpfs), or a new database on the private PostgreSQL.
func (m *fleetMeasure) database(db string, pg *Postgres) (string, error) {
	m.seq++
	if db == "sqlite" {
		return filepath.Join(m.work, fmt.Sprintf("fleet-%d.db", m.seq)), nil
	}
	return pg.NewDatabase()
}

// open opens the fleet as the benchmark itself does: to register the
// accounts and make them due, not to work them.
func open(ctx context.Context, db, dsn string) (*fleet.Fleet, *sql.DB, error) {
	var f *fleet.Fleet
	var err error
	driver, raw := "pgx", dsn
	if db == "sqlite" {
		f, err = fleet.OpenSQLite(ctx, dsn, nil)
		driver, raw = "sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)"
	} else {
		f, err = fleet.OpenPostgres(ctx, dsn, nil)
	}
	if err != nil {
		return nil, nil, err
	}
	d, err := sql.Open(driver, raw)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, d, nil
}

// parallel runs do(i) for i in [0, n) on k goroutines and returns the
// first error.
func parallel(ctx context.Context, n, k int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	next := make(chan int)
	for range k {
		wg.Go(func() {
			for i := range next {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// addAccounts registers accounts 0..n-1, polled every hour (or pushed),
// and returns the time it took.
func (m *fleetMeasure) addAccounts(ctx context.Context, f *fleet.Fleet, n int, push bool) (time.Duration, error) {
	t0 := time.Now()
	err := parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		return f.Add(ctx, fleet.Account{
			ID:        fleetUser(i),
			URL:       "imaps://" + fleetUser(i) + "@" + m.srv.IMAPSAddr + "/INBOX",
			Retention: mailaccess.KeepOnServer,
			Handler:   fleetHandler,
			Every:     time.Hour,
			Push:      push,
		})
	})
	return time.Since(t0), err
}

// runNow makes accounts 0..n-1 due now.
func runNow(ctx context.Context, f *fleet.Fleet, n int) error {
	return parallel(ctx, n, 8, func(ctx context.Context, i int) error { return f.RunNow(ctx, fleetUser(i)) })
}

// waitSwept waits until n accounts have recorded a success at or after
// since, polling the fleet's table.
func (m *fleetMeasure) waitSwept(ctx context.Context, d *sql.DB, since time.Time, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := -1
	for {
		var done, failed int
		err := d.QueryRowContext(ctx, `SELECT
			coalesce(sum(CASE WHEN last_success_ns >= $1 THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE WHEN last_error_ns >= $1 THEN 1 ELSE 0 END), 0)
			FROM unimail_fleet_accounts`, since.UnixNano()).Scan(&done, &failed)
		if err != nil {
			return err
		}
		if done >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v, %d of %d accounts had swept (%d failed runs)%s", limit, done, n, failed, m.lastErrors(ctx, d, since))
		}
		if done/1000 != last/1000 {
			m.r.logf("fleet:   %d of %d accounts swept after %.1fs (%d failed runs)", done, n, time.Since(since).Seconds(), failed)
			last = done
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastErrors tells a few accounts' last errors since since.
func (m *fleetMeasure) lastErrors(ctx context.Context, d *sql.DB, since time.Time) string {
	rows, err := d.QueryContext(ctx, "SELECT id, last_error_kind, last_error FROM unimail_fleet_accounts WHERE last_error_ns >= $1 LIMIT 3", since.UnixNano())
	if err != nil {
		return ""
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, kind, text string
		if rows.Scan(&id, &kind, &text) == nil {
			fmt.Fprintf(&b, "; %s: %s: %s", id, kind, text)
		}
	}
	return b.String()
}

// checkFetched fails unless each of the n accounts fetched exactly want
// messages.
func checkFetched(ctx context.Context, d *sql.DB, n int, want int64) error {
	var rows, good int
	err := d.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN fetched = $1 THEN 1 ELSE 0 END), 0) FROM unimail_fleet_accounts`, want).Scan(&rows, &good)
	if err != nil {
		return err
	}
	if rows != n || good != n {
		return fmt.Errorf("%d of %d accounts fetched exactly %d message(s)", good, rows, want)
	}
	return nil
}

// sweepLimit bounds one sweep.
const sweepLimit = 10 * time.Minute

// sweep measures one case: a fresh database with every account, procs
// worker processes, a sweep with one new message per account, then a
// sweep with nothing new.
func (m *fleetMeasure) sweep(ctx context.Context, db string, procs int, pg *Postgres) (FleetSweep, error) {
	s := FleetSweep{DB: db, Procs: procs, LoadBefore: LoadAverage()}
	dsn, err := m.database(db, pg)
	if err != nil {
		return s, err
	}
	f, d, err := open(ctx, db, dsn)
	if err != nil {
		return s, err
	}
	defer f.Close()
	defer d.Close()
	if s.Add, err = m.addAccounts(ctx, f, m.n, false); err != nil {
		return s, err
	}
	m.r.logf("fleet: %s, %d process(es): %d accounts added in %.2fs", db, procs, m.n, s.Add.Seconds())
	var ws []*workerProc
	defer func() {
		for _, w := range ws {
			w.kill()
		}
	}()
	for i := range procs {
		w, err := m.r.startWorker(ctx, FleetWorker{
			ID: fmt.Sprintf("w%d", i), DB: db, DSN: dsn, CAFile: m.caFile,
			Workers: m.workers, HostLimit: m.hostLimit,
			CPUProfile: m.cpuProfile(fmt.Sprintf("fleet-%s-%d-w%d.pprof", db, procs, i)),
		}, nil)
		if err != nil {
			return s, err
		}
		ws = append(ws, w)
	}
	dove0 := m.srv.cpu()
	for _, phase := range []struct {
		name string
		out  *time.Duration
	}{{"sweep", &s.Sweep}, {"nothing new", &s.NoNew}} {
		start := time.Now()
		if err := runNow(ctx, f, m.n); err != nil {
			return s, err
		}
		if phase.out == &s.Sweep {
			s.RunNow = time.Since(start)
		}
		if err := m.waitSwept(ctx, d, start, m.n, sweepLimit); err != nil {
			return s, fmt.Errorf("%s: %w", phase.name, err)
		}
		*phase.out = time.Since(start)
		m.r.logf("fleet: %s, %d process(es): %s of %d accounts in %.2fs (%.0f accounts/s); Dovecot CPU so far %.1fs", db, procs, phase.name, m.n, phase.out.Seconds(), float64(m.n)/phase.out.Seconds(), (m.srv.cpu() - dove0).Seconds())
	}
	s.LoadAfter = LoadAverage()
	s.DovecotCPU = m.srv.cpu() - dove0
	for _, w := range ws {
		s.WorkerCPU += procCPU(w.pid, false)
		m.r.logf("fleet: %s, %d process(es): worker CPU %.1fs, Dovecot CPU %.1fs over both sweeps", db, procs, procCPU(w.pid, false).Seconds(), s.DovecotCPU.Seconds())
		smp, err := w.stop()
		if err != nil {
			return s, err
		}
		s.MaxRSS = max(s.MaxRSS, smp.MaxRSS)
	}
	ws = nil
	// Every account took its one message, once, over both sweeps.
	if err := checkFetched(ctx, d, m.n, 1); err != nil {
		return s, err
	}
	return s, nil
}

// push measures the push case: one worker process holds n accounts in
// IMAP IDLE; messages are delivered one at a time to distinct accounts.
func (m *fleetMeasure) push(ctx context.Context, n int) (FleetPush, error) {
	p := FleetPush{Accounts: n}
	dsn, err := m.database("sqlite", nil)
	if err != nil {
		return p, err
	}
	f, d, err := open(ctx, "sqlite", dsn)
	if err != nil {
		return p, err
	}
	defer f.Close()
	defer d.Close()
	var mu sync.Mutex
	got := map[string][]time.Time{}
	w, err := m.r.startWorker(ctx, FleetWorker{
		ID: "push", DB: "sqlite", DSN: dsn, CAFile: m.caFile,
		Workers: n + 10, HostLimit: m.hostLimit, PushPeriod: fleetPushPeriod, Report: true,
	}, func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "got" {
			return
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return
		}
		mu.Lock()
		got[f[1]] = append(got[f[1]], time.Unix(0, ns))
		mu.Unlock()
	})
	if err != nil {
		return p, err
	}
	defer w.kill()
	// The worker working no account: its baseline.
	time.Sleep(2 * time.Second)
	if p.Baseline, err = vmRSS(w.pid); err != nil {
		return p, err
	}
	if _, err := m.addAccounts(ctx, f, n, true); err != nil {
		return p, err
	}
	start := time.Now()
	if err := runNow(ctx, f, n); err != nil {
		return p, err
	}
	// Every account takes its message, then waits in IDLE.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		taken := len(got)
		mu.Unlock()
		idle := m.srv.idleSessions()
		if taken >= n && idle >= n {
			break
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("after 5 minutes, %d of %d accounts took their message and %d sessions are in IDLE", taken, n, idle)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Hold = time.Since(start)
	m.r.logf("fleet: push: %d accounts in IDLE %.2fs after RunNow", n, p.Hold.Seconds())
	time.Sleep(2 * time.Second) // settle
	if p.Held, err = vmRSS(w.pid); err != nil {
		return p, err
	}
	m.r.logf("fleet: push: worker RSS %.1f MiB with no account, %.1f MiB holding %d (%.0f KiB each)", mib(p.Baseline), mib(p.Held), n, float64(p.PerAccount())/1024)

	// Deliveries to distinct accounts, one at a time.
	k := min(FleetDeliveries, n)
	targets := rand.Perm(n)[:k]
	saved := make([]time.Time, k)
	for j, i := range targets {
		t0 := time.Now()
		if err := m.srv.Save(fleetUser(i), "INBOX", Message(m.n+j, FleetMessage)); err != nil {
			return p, err
		}
		saved[j] = time.Now()
		p.Delivered++
		if d := fleetDeliveryGap - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
	}
	wait := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		received := 0
		for _, i := range targets {
			if len(got[fleetUser(i)]) >= 2 {
				received++
			}
		}
		mu.Unlock()
		if received == k || time.Now().After(wait) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for j, i := range targets {
		if g := got[fleetUser(i)]; len(g) >= 2 {
			p.Received++
			p.Delays = append(p.Delays, g[1].Sub(saved[j]))
		}
	}
	mu.Unlock()
	smp, err := w.stop()
	if err != nil {
		return p, err
	}
	p.MaxRSS = smp.MaxRSS
	m.r.logf("fleet: push: %d of %d deliveries taken, delay p50 %v p99 %v max %v; worker peak RSS %.1f MiB",
		p.Received, p.Delivered, p.Delay(0.5), p.Delay(0.99), p.Delay(1), mib(p.MaxRSS))
	if p.Received != p.Delivered {
		return p, fmt.Errorf("%d of %d delivered messages reached the handler", p.Received, p.Delivered)
	}
	return p, nil
}

// procCPU returns the CPU time (user and system) that process pid used,
// and with children its reaped children's too, from /proc/<pid>/stat.
func procCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The fields after the command name (in parentheses): state is
	// field 3; utime, stime, cutime and cstime are fields 14 to 17.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	last := 12
	if children {
		last = 14
	}
	var ticks int64
	for _, v := range f[11 : last+1] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// vmRSS returns the resident size (VmRSS) of process pid.
func vmRSS(pid int) (int64, error) {
	v := procField(filepath.Join("/proc", strconv.Itoa(pid), "status"), "VmRSS")
	f := strings.Fields(v) // "12345 kB"
	if len(f) == 0 {
		return 0, fmt.Errorf("no VmRSS for process %d", pid)
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	return kb * 1024, err
}

// workerProc is a running worker process of the fleet profile.
type workerProc struct {
	pid    int // the worker's own PID (not the launcher's)
	stderr *syncBuffer
	done   chan workerExit
	exited *workerExit
	cancel context.CancelFunc // kills the launcher's process group
}

type workerExit struct {
	s   Sample
	err error
}

// startWorker starts unimail-bench -fleet-worker through the launcher and
// returns once it works; each further line it prints goes to onLine.
func (r *Runner) startWorker(ctx context.Context, w FleetWorker, onLine func(string)) (*workerProc, error) {
	in, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.Exe, "-fleet-worker")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), fleetWorkerEnv+"="+benchPassword)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	ctx, cancel := context.WithCancel(ctx)
	p := &workerProc{stderr: &syncBuffer{}, done: make(chan workerExit, 1), cancel: cancel}
	cmd.Stderr = p.stderr
	go func() {
		s, err := r.runMeasured(ctx, cmd)
		pw.Close()
		p.done <- workerExit{s, err}
	}()
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if pid, ok := strings.CutPrefix(line, "ready "); ok {
				n, _ := strconv.Atoi(pid)
				ready <- n
				continue
			}
			if strings.HasPrefix(line, "stats ") {
				r.logf("fleet: worker %s: %s", w.ID, line)
			}
			if onLine != nil {
				onLine(line)
			}
		}
		io.Copy(io.Discard, pr)
		close(ready)
	}()
	select {
	case pid, ok := <-ready:
		if ok && pid > 0 {
			p.pid = pid
			return p, nil
		}
		e := <-p.done
		p.exited = &e
		cancel()
		return nil, fmt.Errorf("fleet worker did not start: %v: %s", e.err, strings.TrimSpace(p.stderr.String()))
	case <-time.After(time.Minute):
		p.kill()
		return nil, fmt.Errorf("fleet worker did not start within a minute: %s", strings.TrimSpace(p.stderr.String()))
	}
}

// stop stops the worker gracefully (SIGTERM) and returns its sample.
func (p *workerProc) stop() (Sample, error) {
	if p.exited == nil {
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		select {
		case e := <-p.done:
			p.exited = &e
		case <-time.After(2 * time.Minute):
			p.kill()
		}
	}
	p.cancel()
	if p.exited.err != nil {
		return p.exited.s, fmt.Errorf("fleet worker: %v: %s", p.exited.err, strings.TrimSpace(p.stderr.String()))
	}
	return p.exited.s, nil
}

// kill kills a worker that is still running (the launcher's process
// group, by its PID) and reaps it.
func (p *workerProc) kill() {
	if p.exited != nil {
		return
	}
	p.cancel()
	e := <-p.done
	p.exited = &e
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Goals of the fleet profile.
const (
	goalSweep     = 60 * time.Second
	goalNoNew     = 20 * time.Second
	goalPushRSS   = 300 << 20 // the whole worker process
	goalPerAcct   = 300 << 10
	goalPushDelay = 2 * time.Second
)

// met says whether a goal was met.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// writeFleet writes the fleet profile's section of BENCHMARKS.md.
func writeFleet(p func(string, ...any), r ProfileResult, cpus int) {
	fr := r.Fleet
	p("")
	p("## fleet: %d IMAP accounts on one Dovecot, kept fetched by package fleet", fr.Accounts)
	p("")
	p("One private Dovecot (the same harness, its Maildirs on tmpfs) with %d users, each INBOX holding one new message of %d octets (delivered into the Maildirs in %.2f s); its limits raised for thousands of sessions (`default_process_limit = 3000`, `default_client_limit = 20000`, `service imap-login` in high-performance mode: `service_count = 0`, `process_min_avail = 2`, `client_limit = 5000`; `service imap { process_limit = 3000; service_count = 0; process_min_avail = 16 }`, so that a session process serves one account after another instead of being started for each: this cut Dovecot's CPU per session about fivefold). Every account is `imaps://uNNNNN@127.0.0.1:port/INBOX`, KeepOnServer with the fleet's SQL state, over implicit TLS verifying the server's certificate, with a handler that discards the bytes. The worker processes are `unimail-bench -fleet-worker`, each started through the launcher so that its peak RSS is its own, with Options.HostLimit = %d (the default is 8: right for a provider, too low for a private server; 16, 32 and 64 were tried on 1,000 accounts and 32 was the fastest, within the noise of a shared machine) and Workers = %d; the rest are the defaults (PollInterval 1 s). Each case gets a fresh database: a new SQLite file on tmpfs, or a new database on one private PostgreSQL %s (`internal/pgtest`: on disk, with the server's default settings, fsync included, and max_connections = 400).",
		fr.Accounts, FleetMessage, fr.Seed.Seconds(), fr.HostLimit, fr.Workers, orUnknown(fr.Postgres))
	p("")
	p("*add*: registering every account (Fleet.Add, every hour; not part of a sweep). *sweep*: the clock starts, the benchmark calls Fleet.RunNow on every account (part of the sweep: *RunNow* is its share), and the clock stops when every account's row records a success after the start (a COUNT over the fleet's table every 50 ms); every account takes its one message. *nothing new*: the same again, when every account finds nothing new. Afterwards every account must have fetched exactly one message, or the case fails. Peak RSS is the largest of the worker processes' (getrusage `ru_maxrss`). Goals: a sweep under %v, a nothing-new sweep under %v, on this %d-CPU machine with Dovecot on it.", goalSweep, goalNoNew, cpus)
	p("")
	p("*CPU* is the CPU time (user and system, from /proc) over both sweeps of the worker processes (together) and of Dovecot's processes (its master with the sessions it reaped, and its living processes). On 2 CPUs, their sum over the wall time of both sweeps shows how much of the machine the benchmark had: what is left went to other work (the load average).")
	p("")
	p("| database | worker processes | add (s) | sweep (s) | accounts/s | RunNow (s) | nothing new (s) | accounts/s | peak RSS per process (MiB) | CPU workers / Dovecot (s) | load before / after | goals (sweep, nothing new) |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
	for _, s := range fr.Sweeps {
		p("| %s | %d | %.1f | %.2f | %.0f | %.2f | %.2f | %.0f | %.1f | %.1f / %.1f | %.2f / %.2f | %s, %s |", s.DB, s.Procs, s.Add.Seconds(),
			s.Sweep.Seconds(), float64(fr.Accounts)/s.Sweep.Seconds(), s.RunNow.Seconds(),
			s.NoNew.Seconds(), float64(fr.Accounts)/s.NoNew.Seconds(), mib(s.MaxRSS), s.WorkerCPU.Seconds(), s.DovecotCPU.Seconds(),
			s.LoadBefore, s.LoadAfter, met(s.Sweep < goalSweep), met(s.NoNew < goalNoNew))
	}
	if ps := fleetScaling(fr); ps != "" {
		p("")
		p("%s", ps)
	}
	if pu := fr.Push; pu != nil {
		p("")
		p("**Push.** One worker process on a fresh SQLite file holds %d of the accounts in push mode (Account.Push, PushPeriod %v, Workers %d): after RunNow, each takes its message and waits in IMAP IDLE; the case waits until the server shows %d sessions in IDLE (their process titles), then 2 s. *RSS per held account* is the worker's VmRSS then, minus its VmRSS when it worked no account (measured before the accounts were added), over %d. Then %d messages are delivered with `doveadm save` (the harness's configuration, into the same Maildirs) to distinct accounts picked at random, one at a time at least %v apart; the handler notes when it takes each, and the *delay* is that instant minus the instant `doveadm save` returned (one clock: the same machine). Goals: the whole worker under 300 MiB (at most 300 KiB per account), a delay p99 of at most %v.",
			pu.Accounts, fleetPushPeriod, pu.Accounts+10, pu.Accounts, pu.Accounts, pu.Delivered, fleetDeliveryGap, goalPushDelay)
		p("")
		p("| accounts held | all in IDLE after (s) | RSS with none (MiB) | RSS holding all (MiB) | per account (KiB) | peak RSS (MiB) | delivered / taken | delay p50 (ms) | p99 (ms) | max (ms) | goals (RSS, delay) |")
		p("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
		p("| %d | %.2f | %.1f | %.1f | %.0f | %.1f | %d / %d | %.0f | %.0f | %.0f | %s, %s |", pu.Accounts, pu.Hold.Seconds(), mib(pu.Baseline), mib(pu.Held),
			float64(pu.PerAccount())/1024, mib(pu.MaxRSS), pu.Delivered, pu.Received,
			ms(pu.Delay(0.5)), ms(pu.Delay(0.99)), ms(pu.Delay(1)),
			met(pu.MaxRSS < goalPushRSS && pu.PerAccount() <= goalPerAcct), met(pu.Received == pu.Delivered && pu.Delay(0.99) <= goalPushDelay))
	}
	if r.Floor > 0 {
		p("")
		p("A process that does nothing shows a peak RSS of %.1f MiB measured the same way. %s", mib(r.Floor), loadNote(r, cpus))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fleetScaling is the report's line on PostgreSQL with 3 worker processes
// against 1.
func fleetScaling(fr *FleetResult) string {
	var one, three *FleetSweep
	for i := range fr.Sweeps {
		s := &fr.Sweeps[i]
		if s.DB == "postgres" && s.Procs == 1 {
			one = s
		}
		if s.DB == "postgres" && s.Procs == 3 {
			three = s
		}
	}
	if one == nil || three == nil || three.Sweep <= 0 || three.NoNew <= 0 {
		return ""
	}
	cpu := func(s *FleetSweep) float64 {
		return (s.WorkerCPU + s.DovecotCPU).Seconds() / float64(2*fr.Accounts) * 1000
	}
	why := "the extra sessions in flight hid the database's and the server's latency"
	if three.Sweep >= one.Sweep {
		why = "on 2 CPUs shared with Dovecot and PostgreSQL, CPU is the limit, and more processes only add their own"
	}
	return fmt.Sprintf("On PostgreSQL, 3 worker processes swept %.2f times as fast as 1 (nothing new: %.2f times; goal: 3 faster than 1, %s). Each process holds at most HostLimit = %d sessions, so 3 may hold %d at once, but the mail server and the database are on the same machine: the workers and Dovecot together used %.1f ms of CPU per account run with 1 process and %.1f ms with 3 (three River clients polling, three processes' TLS, Dovecot serving more sessions at once); %s. Worker processes scale out where the mail servers and the database are on other machines.",
		float64(one.Sweep)/float64(three.Sweep), float64(one.NoNew)/float64(three.NoNew), met(three.Sweep < one.Sweep), fr.HostLimit, 3*fr.HostLimit, cpu(one), cpu(three), why)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
