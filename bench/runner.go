package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Phases of the incremental profile.
const (
	// PhaseFirst is a run that finds every message new.
	PhaseFirst = "first"
	// PhaseNoNew is a run that finds nothing new.
	PhaseNoNew = "no-new"
)

// Case is one measured client on one profile.
type Case struct {
	// Kind is KindRaw, KindRawList, KindRawNew, KindLibrary, KindRetrieve
	// or KindMbsync.
	Kind string `json:"kind"`
	// Proto is IMAP or POP3.
	Proto string `json:"proto"`
	// Phase is "" for a stateless fetch, or PhaseFirst or PhaseNoNew.
	Phase string `json:"phase,omitempty"`
	// Batch, for retrieve, is its -batch (the messages made durable
	// together); 0 leaves retrieve's default.
	Batch int `json:"batch,omitempty"`
}

func (c Case) String() string {
	s := c.Client() + " " + c.Proto
	if c.Phase != "" {
		s += " " + c.Phase
	}
	return s
}

// Client names the measured client: its kind, and retrieve's -batch when
// it is set.
func (c Case) Client() string {
	if isAccountKind(c.Kind) && c.Phase == PhaseNoNew {
		return c.Kind + ", nothing new"
	}
	if c.Batch > 0 {
		return fmt.Sprintf("%s -batch %d", c.Kind, c.Batch)
	}
	return c.Kind
}

// baseline is the case this one is compared with: the raw fetch, or the
// raw look for new messages for a run with nothing new.
func (c Case) baseline() Case {
	if c.Phase == PhaseNoNew {
		return Case{Kind: KindRawNew, Proto: c.Proto, Phase: PhaseNoNew}
	}
	return Case{Kind: KindRaw, Proto: c.Proto, Phase: c.Phase}
}

// Sample is one measured run of a case.
type Sample struct {
	// Wall is the whole process's wall time, from before it was started
	// to after it was reaped.
	Wall time.Duration `json:"wall_ns"`
	// InProc is the time the process itself measured from before its
	// connection to after its session ended (0 for retrieve and mbsync,
	// which do not report it).
	InProc time.Duration `json:"inproc_ns"`
	// MaxRSS is the process's peak resident set size in bytes (getrusage
	// ru_maxrss of the reaped child).
	MaxRSS int64 `json:"max_rss"`
	// Procs is the GOMAXPROCS the library ran with (0 for the others).
	Procs int `json:"procs,omitempty"`
}

// CaseResult is the summary of a case's samples.
type CaseResult struct {
	Case
	Samples []Sample `json:"samples"`
	// Wall and InProc are the medians of the samples.
	Wall   time.Duration `json:"wall_ns"`
	InProc time.Duration `json:"inproc_ns"`
	// MaxRSS is the largest peak RSS of the samples.
	MaxRSS int64 `json:"max_rss"`
	// Messages and Bytes are what each run delivered (or listed).
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Ratio is Wall over the baseline's Wall, and InProcRatio InProc over
	// the baseline's InProc (0 when there is none).
	Ratio       float64 `json:"ratio"`
	InProcRatio float64 `json:"inproc_ratio"`
}

// ProfileResult is what a profile measured.
type ProfileResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Incremental bool   `json:"incremental"`
	// Messages and Bytes are the mailbox content.
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Generate is the time to build the messages, Seed the time to write
	// them into the Maildir, and FirstOpen the wall time of the first
	// session after seeding (Dovecot indexes the new Maildir then), a raw
	// IMAP fetch. FirstList, for the incremental profiles, is the wall time
	// of the raw listing right after it (Dovecot fills its cache of the
	// message sizes then).
	Generate  time.Duration `json:"generate_ns"`
	Seed      time.Duration `json:"seed_ns"`
	FirstOpen time.Duration `json:"first_open_ns"`
	FirstList time.Duration `json:"first_list_ns,omitempty"`
	// LoadBefore and LoadAfter are the machine's one-minute load average
	// before the profile was generated and after its last run: other work
	// on the machine shows there.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
	// Runs is the number of measured runs per case (after one warm-up).
	Runs int `json:"runs"`
	// Floor is the peak RSS that a process doing nothing reports when
	// measured the same way (the launcher's share).
	Floor int64        `json:"floor_rss"`
	Cases []CaseResult `json:"cases"`
	// Fleet is what the fleet profile measured (nil for the others).
	Fleet *FleetResult `json:"fleet,omitempty"`
}

// Case returns the result of case c, or nil.
func (p *ProfileResult) Case(c Case) *CaseResult {
	for i := range p.Cases {
		if p.Cases[i].Case == c {
			return &p.Cases[i]
		}
	}
	return nil
}

// Runner runs profiles: it starts a private Dovecot per profile, seeds it,
// and measures each case in a process of its own, so that each case's
// peak RSS is its own and cases do not disturb each other's memory.
type Runner struct {
	// Exe and ExeArgs start a child that runs one Job (this program with
	// a flag such as -child): it reads the Job as JSON on stdin, the
	// password from PasswordEnv, and writes the Outcome as JSON on stdout.
	Exe     string
	ExeArgs []string
	// Launcher is the bench/cmd/spawn binary (and any arguments before
	// the command) that starts each measured process, reaps it and reports
	// its wall time and peak RSS. It is required: a process spawned by the
	// benchmark itself would report the benchmark's own size as its peak
	// RSS (see the bench/cmd/spawn documentation).
	Launcher []string
	// Retrieve is the built examples/retrieve binary; "" leaves the
	// retrieve cases out.
	Retrieve string
	// RetrieveBatches adds, to the profiles that are not incremental, a
	// retrieve case per value, run with -batch set to it (the number of
	// messages made durable together), next to retrieve with its default.
	RetrieveBatches []int
	// Mbsync is the mbsync (isync 1.4) binary (see MbsyncPath); "" leaves
	// the mbsync cases out. They are IMAP cases of the profiles that are
	// not incremental: each run writes a configuration file (mode 0600,
	// with the password) into a fresh directory under WorkDir, runs
	// `mbsync -c <file> -q <channel>` to pull the whole INBOX into a
	// Maildir there (flags and the server's mailbox untouched), checks
	// that the Maildir holds every message and octet, and removes the
	// directory.
	Mbsync string
	// Runs is the number of measured runs per case, after one warm-up.
	Runs int
	// IncrementalRuns is Runs for the incremental profiles (0: Runs),
	// whose first runs over large mailboxes take minutes.
	IncrementalRuns int
	// WorkDir holds the Maildirs and state files of the runs; it should be
	// on tmpfs (/dev/shm) so that disk speed is not measured.
	WorkDir string
	// ClientTimeout, when not zero, replaces the library's default idle
	// timeout in the library and retrieve cases (see Target.Timeout).
	ClientTimeout time.Duration
	// CaseTimeout bounds each measured process (0: no bound); one that
	// takes longer is killed and the profile fails, so that a hung client
	// cannot stall the benchmark.
	CaseTimeout time.Duration
	// CPUProfileDir, when set, receives a CPU profile of the last measured
	// run of each library case (library-<proto>-<profile>.pprof).
	CPUProfileDir string
	// FleetAccounts and FleetPush are the numbers of accounts of the
	// fleet profile's sweeps and of its push case (0: FleetAccounts and
	// FleetPushAccounts; FleetPush < 0 leaves the push case out). Its
	// worker processes are Exe run with -fleet-worker.
	FleetAccounts, FleetPush int
	// FleetCases, when not empty, limits the fleet profile's sweeps to
	// these cases: "sqlite/1", "postgres/1", "postgres/3".
	FleetCases []string
	// FleetHostLimit is the worker processes' Options.HostLimit in the
	// fleet profile (0: FleetHostLimit); their Workers is at least twice
	// it.
	FleetHostLimit int
	// Log receives progress lines; nil means none. Lines are written one
	// at a time, also from the fleet profile's goroutines.
	Log io.Writer

	logMu sync.Mutex
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		r.logMu.Lock()
		defer r.logMu.Unlock()
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

const (
	benchUser     = "alice"
	benchPassword = "alice-password"
)

// Run measures one profile.
func (r *Runner) Run(ctx context.Context, p Profile) (ProfileResult, error) {
	runs := r.Runs
	if p.Incremental && r.IncrementalRuns > 0 {
		runs = r.IncrementalRuns
	}
	if p.Fleet {
		return r.runFleet(ctx, p)
	}
	res := ProfileResult{Name: p.Name, Description: p.Description, Incremental: p.Incremental, Runs: runs}
	if runs < 1 {
		return res, errors.New("runs must be at least 1")
	}
	res.LoadBefore = LoadAverage()
	t0 := time.Now()
	msgs := p.Messages()
	res.Generate = time.Since(t0)
	res.Messages, res.Bytes = len(msgs), TotalBytes(msgs)
	r.logf("%s: %s, %d messages, %.1f MiB (generated in %.2fs)", p.Name, p.Description, res.Messages, mib(res.Bytes), res.Generate.Seconds())

	srv, err := StartDovecot()
	if err != nil {
		return res, err
	}
	defer srv.Close()
	t0 = time.Now()
	if p.Account {
		err = seedAccount(srv, msgs)
	} else {
		err = srv.Seed(benchUser, "INBOX", msgs)
	}
	if err != nil {
		return res, err
	}
	res.Seed = time.Since(t0)
	msgs = nil // the parent keeps no copy while the children run
	r.logf("%s: seeded in %.2fs", p.Name, res.Seed.Seconds())

	work, err := os.MkdirTemp(r.WorkDir, "run-"+p.Name+"-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM(), 0o644); err != nil {
		return res, err
	}
	targets := map[string]Target{
		IMAP: {Proto: IMAP, Addr: srv.IMAPSAddr, CAFile: caFile, User: benchUser, Timeout: r.ClientTimeout},
		POP3: {Proto: POP3, Addr: srv.POP3SAddr, CAFile: caFile, User: benchUser, Timeout: r.ClientTimeout},
	}
	m := &measure{r: r, p: p, work: work, targets: targets, n: res.Messages, bytes: res.Bytes}

	// The first session after seeding makes Dovecot index the Maildir.
	first := Case{Kind: KindRaw, Proto: p.Protocols[0]}
	if p.Incremental {
		first.Phase = PhaseFirst
	}
	s, err := m.one(ctx, first, false)
	if err != nil {
		return res, err
	}
	res.FirstOpen = s.Wall
	r.logf("%s: first session after seeding: %.2fs", p.Name, s.Wall.Seconds())
	if p.Incremental {
		s, err := m.one(ctx, Case{Kind: KindRawList, Proto: IMAP, Phase: PhaseNoNew}, false)
		if err != nil {
			return res, err
		}
		res.FirstList = s.Wall
		r.logf("%s: first listing after seeding: %.2fs", p.Name, s.Wall.Seconds())
	}

	if f, err := r.Floor(ctx); err == nil {
		res.Floor = f.MaxRSS
	}
	cases := r.cases(p)
	if p.Incremental {
		if err := m.prepareNoNew(ctx); err != nil {
			return res, err
		}
	}
	if p.Account {
		if err := m.prepareAccountNoNew(ctx); err != nil {
			return res, err
		}
	}
	// One warm-up run of every case, then the measured runs, the cases
	// interleaved so that a slow phase of the machine hits them alike. The
	// first runs of an incremental profile were warmed up above.
	samples := make([][]Sample, len(cases))
	for run := 0; run <= runs; run++ {
		for i, c := range cases {
			if run == 0 && c.Phase == PhaseFirst {
				continue
			}
			s, err := m.one(ctx, c, run == runs)
			if err != nil {
				return res, err
			}
			if run == 0 {
				r.logf("%s: warm-up %-22s %7.3fs", p.Name, c, s.Wall.Seconds())
				continue
			}
			samples[i] = append(samples[i], s)
			r.logf("%s: run %d/%d %-22s %7.3fs  rss %6.1f MiB", p.Name, run, runs, c, s.Wall.Seconds(), mib(s.MaxRSS))
		}
	}
	res.LoadAfter = LoadAverage()
	for i, c := range cases {
		cr := CaseResult{Case: c, Samples: samples[i], Messages: res.Messages, Bytes: res.Bytes}
		if c.Phase == PhaseNoNew && c.Kind != KindRawList {
			cr.Messages, cr.Bytes = 0, 0
		}
		var walls, inprocs []time.Duration
		for _, s := range samples[i] {
			walls = append(walls, s.Wall)
			inprocs = append(inprocs, s.InProc)
			cr.MaxRSS = max(cr.MaxRSS, s.MaxRSS)
		}
		cr.Wall, cr.InProc = Median(walls), Median(inprocs)
		res.Cases = append(res.Cases, cr)
	}
	for i := range res.Cases {
		c := &res.Cases[i]
		if b := res.Case(c.baseline()); b != nil && b.Wall > 0 {
			c.Ratio = float64(c.Wall) / float64(b.Wall)
			if c.InProc > 0 && b.InProc > 0 {
				c.InProcRatio = float64(c.InProc) / float64(b.InProc)
			}
		}
	}
	return res, nil
}

// Floor measures a process that does nothing (true(1)) through the
// launcher: its peak RSS is the floor under every measured case's.
func (r *Runner) Floor(ctx context.Context) (Sample, error) {
	path, err := exec.LookPath("true")
	if err != nil {
		return Sample{}, err
	}
	return r.runMeasured(ctx, exec.Command(path))
}

// cases lists the measured cases of a profile, baselines first.
func (r *Runner) cases(p Profile) []Case {
	var out []Case
	if p.Account {
		return r.accountCases()
	}
	if p.Incremental {
		for _, phase := range []string{PhaseFirst, PhaseNoNew} {
			base := KindRaw
			if phase == PhaseNoNew {
				base = KindRawNew
				out = append(out, Case{Kind: KindRawList, Proto: IMAP, Phase: phase})
			}
			out = append(out, Case{Kind: base, Proto: IMAP, Phase: phase}, Case{Kind: KindLibrary, Proto: IMAP, Phase: phase})
			if r.Retrieve != "" {
				out = append(out, Case{Kind: KindRetrieve, Proto: IMAP, Phase: phase})
			}
		}
		return out
	}
	for _, proto := range p.Protocols {
		out = append(out, Case{Kind: KindRaw, Proto: proto}, Case{Kind: KindLibrary, Proto: proto}, Case{Kind: KindLibraryOneThread, Proto: proto})
		if r.Retrieve != "" {
			out = append(out, Case{Kind: KindRetrieve, Proto: proto})
			for _, b := range r.RetrieveBatches {
				out = append(out, Case{Kind: KindRetrieve, Proto: proto, Batch: b})
			}
		}
		if r.Mbsync != "" && proto == IMAP {
			out = append(out, Case{Kind: KindMbsync, Proto: proto})
		}
	}
	return out
}

// measure runs the cases of one profile.
type measure struct {
	r       *Runner
	p       Profile
	work    string
	targets map[string]Target
	n       int
	bytes   int64
}

// Paths of the incremental profile's state: fullState and fullMaildir
// hold a complete first run, for the runs with nothing new.
func (m *measure) fullState() string   { return filepath.Join(m.work, "state-full") }
func (m *measure) fullMaildir() string { return filepath.Join(m.work, "maildir-full") }

// prepareNoNew makes the library's state file and retrieve's Maildir of a
// complete first run, which the no-new runs start from.
func (m *measure) prepareNoNew(ctx context.Context) error {
	t := m.targets[IMAP]
	out, s, err := m.child(ctx, Job{Kind: KindLibrary, Target: t, StateFile: m.fullState()})
	if err != nil {
		return fmt.Errorf("preparing the state of a complete run: %w", err)
	}
	if err := m.checkAll(Case{Kind: KindLibrary, Proto: IMAP, Phase: PhaseFirst}, out); err != nil {
		return err
	}
	m.r.logf("%s: library first run into the no-new state: %.2fs", m.p.Name, s.Wall.Seconds())
	if m.r.Retrieve != "" {
		out, s, err := m.retrieve(ctx, t, m.fullMaildir(), 0)
		if err != nil {
			return fmt.Errorf("preparing the Maildir of a complete run: %w", err)
		}
		if err := m.checkAll(Case{Kind: KindRetrieve, Proto: IMAP, Phase: PhaseFirst}, out); err != nil {
			return err
		}
		m.r.logf("%s: retrieve first run into the no-new Maildir: %.2fs", m.p.Name, s.Wall.Seconds())
	}
	return nil
}

// one runs case c once and checks what it delivered.
func (m *measure) one(ctx context.Context, c Case, last bool) (Sample, error) {
	if m.r.CaseTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, m.r.CaseTimeout, fmt.Errorf("%s took longer than %v", c, m.r.CaseTimeout))
		defer cancel()
	}
	t := m.targets[c.Proto]
	if isAccountKind(c.Kind) {
		t = accountTarget(t)
	}
	var (
		out Outcome
		s   Sample
		err error
	)
	switch c.Kind {
	case KindLibraryAccount, KindRetrieveAccount, KindMbsyncAccount:
		out, s, err = m.oneAccount(ctx, c, t)
	case KindRaw, KindRawList:
		out, s, err = m.child(ctx, Job{Kind: c.Kind, Target: t, Want: m.n})
	case KindRawNew:
		// Seed numbers the messages 1..n: nothing is above n.
		out, s, err = m.child(ctx, Job{Kind: c.Kind, Target: t, Want: 0, After: uint32(m.n)})
	case KindLibraryOneThread:
		out, s, err = m.child(ctx, Job{Kind: c.Kind, Target: t})
	case KindLibrary:
		j := Job{Kind: KindLibrary, Target: t}
		switch c.Phase {
		case PhaseFirst:
			j.StateFile = filepath.Join(m.work, "state-first")
			if err := os.Remove(j.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				return s, err
			}
		case PhaseNoNew:
			j.StateFile = m.fullState()
		}
		if last && m.r.CPUProfileDir != "" {
			name := "library-" + c.Proto + "-" + m.p.Name
			if c.Phase != "" {
				name += "-" + c.Phase
			}
			j.CPUProfile = filepath.Join(m.r.CPUProfileDir, name+".pprof")
		}
		out, s, err = m.child(ctx, j)
	case KindRetrieve:
		dir := m.fullMaildir()
		if c.Phase != PhaseNoNew {
			dir = filepath.Join(m.work, "maildir-"+c.Proto)
			if c.Batch > 0 {
				dir += "-batch" + strconv.Itoa(c.Batch)
			}
			if err := os.RemoveAll(dir); err != nil {
				return s, err
			}
		}
		out, s, err = m.retrieve(ctx, t, dir, c.Batch)
		if err == nil && c.Phase != PhaseNoNew {
			err = checkMaildir(dir, m.n)
		}
	case KindMbsync:
		if c.Phase != "" {
			err = errors.New("mbsync is measured on stateless fetches only")
			break
		}
		// What the Maildir holds: checkAll below compares it with the
		// mailbox.
		out, s, err = m.mbsync(ctx, t)
	default:
		err = errors.New("unknown case kind " + c.Kind)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		return s, fmt.Errorf("%s %s: %w", m.p.Name, c, err)
	}
	if c.Kind == KindRawNew {
		return s, nil // ListIMAPAfter checked that it found nothing new
	}
	if c.Phase == PhaseNoNew && c.Kind != KindRawList {
		if out.Messages != 0 || out.Skipped != m.n {
			return s, fmt.Errorf("%s %s: delivered %d and skipped %d, want 0 and %d", m.p.Name, c, out.Messages, out.Skipped, m.n)
		}
		return s, nil
	}
	return s, m.checkAll(c, out)
}

// checkAll fails unless out has every message and every octet.
func (m *measure) checkAll(c Case, out Outcome) error {
	if out.Messages != m.n || out.Bytes != m.bytes {
		return fmt.Errorf("%s %s: got %d messages and %d octets, want %d and %d", m.p.Name, c, out.Messages, out.Bytes, m.n, m.bytes)
	}
	return nil
}

// child runs one job in a child process.
func (m *measure) child(ctx context.Context, j Job) (Outcome, Sample, error) {
	in, err := json.Marshal(j)
	if err != nil {
		return Outcome{}, Sample{}, err
	}
	cmd := exec.Command(m.r.Exe, m.r.ExeArgs...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), PasswordEnv+"="+benchPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s, err := m.r.runMeasured(ctx, cmd)
	if err != nil {
		return Outcome{}, s, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var out Outcome
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, s, fmt.Errorf("child output %q: %v", stdout.String(), err)
	}
	s.InProc, s.Procs = out.Elapsed, out.Procs
	return out, s, nil
}

// retrieve runs examples/retrieve (KeepOnServer) into the Maildir dir,
// with its state file in the Maildir (its default), and with -batch batch
// unless it is 0.
func (m *measure) retrieve(ctx context.Context, t Target, dir string, batch int) (Outcome, Sample, error) {
	return m.retrievePath(ctx, t, "", dir, batch)
}

// retrievePath is retrieve with path after the URL's address, such as
// "/*" for a whole account.
func (m *measure) retrievePath(ctx context.Context, t Target, path, dir string, batch int) (Outcome, Sample, error) {
	scheme := "imaps"
	if t.Proto == POP3 {
		scheme = "pop3s"
	}
	url := scheme + "://" + t.User + "@" + t.Addr + path
	args := []string{"-maildir", dir, "-retention", "keep", "-ca", t.CAFile}
	if t.Timeout > 0 {
		args = append(args, "-timeout", t.Timeout.String())
	}
	if batch > 0 {
		args = append(args, "-batch", strconv.Itoa(batch))
	}
	cmd := exec.Command(m.r.Retrieve, append(args, url)...)
	cmd.Env = append(os.Environ(), PasswordEnv+"="+benchPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s, err := m.r.runMeasured(ctx, cmd)
	if err != nil {
		return Outcome{}, s, fmt.Errorf("retrieve: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out, err := parseSummary(stdout.String())
	return out, s, err
}

// parseSummary reads retrieve's "delivered=N skipped=N deleted=N bytes=N".
func parseSummary(s string) (Outcome, error) {
	var out Outcome
	fields := map[string]bool{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return out, fmt.Errorf("retrieve summary %q: %v", s, err)
		}
		switch k {
		case "delivered":
			out.Messages = int(n)
		case "skipped":
			out.Skipped = int(n)
		case "bytes":
			out.Bytes = n
		default:
			continue
		}
		fields[k] = true
	}
	if len(fields) != 3 {
		return out, fmt.Errorf("retrieve printed no summary line: %q", s)
	}
	return out, nil
}

// checkMaildir fails unless dir/new holds exactly n messages.
func checkMaildir(dir string, n int) error {
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		return err
	}
	if len(ents) != n {
		return fmt.Errorf("the new/ of Maildir %s holds %d messages, want %d", dir, len(ents), n)
	}
	return nil
}

// runMeasured runs cmd through the launcher and returns its wall time and
// peak RSS.
func (r *Runner) runMeasured(ctx context.Context, cmd *exec.Cmd) (Sample, error) {
	if len(r.Launcher) == 0 {
		return Sample{}, errors.New("no launcher to measure processes with")
	}
	return spawned(ctx, cmd, r.Launcher)
}

// Median returns the median of ds (the mean of the two middle values for
// an even count), or 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// LoadAverage returns the one-minute load average from /proc/loadavg, or
// -1 where it cannot be read.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
