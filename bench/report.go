package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Meta describes the run and the machine it ran on.
type Meta struct {
	// Command is the command line that produced the results.
	Command string `json:"command"`
	// Date is when the run started.
	Date time.Time `json:"date"`
	// CPUs is the number of logical CPUs, CPUModel the model name from
	// /proc/cpuinfo, MemTotal the memory in bytes from /proc/meminfo.
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal int64  `json:"mem_total"`
	// OS is GOOS/GOARCH and, on Linux, the kernel release.
	OS string `json:"os"`
	// GoVersion is the version of Go that built the benchmark.
	GoVersion string `json:"go_version"`
	// Dovecot is the output of dovecot --version.
	Dovecot string `json:"dovecot"`
	// Mbsync is the output of mbsync --version when the mbsync cases were
	// measured ("" when not); MbsyncMissing says that they were not
	// because mbsync is not installed.
	Mbsync        string `json:"mbsync,omitempty"`
	MbsyncMissing bool   `json:"mbsync_missing,omitempty"`
	// Commit is the commit of the code measured ("" when unknown).
	Commit string `json:"commit,omitempty"`
	// ClientTimeout is the idle timeout given to the library and retrieve
	// (0: their default).
	ClientTimeout time.Duration `json:"client_timeout_ns,omitempty"`
	// Runs is the number of measured runs per case.
	Runs int `json:"runs"`
}

// CollectMeta fills in what can be read from this machine.
func CollectMeta(command string, runs int) Meta {
	m := Meta{
		Command:   command,
		Date:      time.Now().UTC(),
		CPUs:      runtime.NumCPU(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: runtime.Version(),
		Runs:      runs,
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		f := strings.Fields(v) // "24570000 kB"
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m.MemTotal = n * 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(b))
	}
	if path := DovecotPath(); path != "" {
		if out, err := exec.Command(path, "--version").Output(); err == nil {
			m.Dovecot = strings.TrimSpace(string(out))
		}
	}
	return m
}

// DovecotPath returns the dovecot executable (in $PATH, then the usual
// sbin and bin directories), or "" when it is not installed.
func DovecotPath() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(d, "dovecot")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// procField returns the value of the first "key : value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WriteMarkdown writes the results as the BENCHMARKS.md document.
func WriteMarkdown(w io.Writer, meta Meta, results []ProfileResult) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("# Benchmarks")
	p("")
	p("This file is written by `bench/run.sh`; every figure in it comes from the run described here. Rerun the command to measure again.")
	p("")
	p("- command: `%s`", meta.Command)
	p("- date: %s", meta.Date.Format("2006-01-02 15:04 MST"))
	if meta.Commit != "" {
		p("- code: commit %s", meta.Commit)
	}
	p("- machine: %d CPUs (%s), %.1f GiB of memory, %s", meta.CPUs, orUnknown(meta.CPUModel), float64(meta.MemTotal)/(1<<30), meta.OS)
	p("- Go: %s", meta.GoVersion)
	p("- Dovecot: %s", orUnknown(meta.Dovecot))
	p("%s", mbsyncNote(meta))
	if meta.ClientTimeout > 0 {
		p("- client timeout: the library and retrieve ran with an idle timeout of %v instead of their default", meta.ClientTimeout)
	}
	onlyFleet := len(results) > 0
	for _, r := range results {
		onlyFleet = onlyFleet && r.Fleet != nil
	}
	if onlyFleet {
		p("- runs: every case of the fleet profile runs once (its sweeps take minutes)")
	} else {
		p("- runs: %d measured runs of every case after one warm-up run (the incremental and fleet profiles say their own); the tables show medians", meta.Runs)
	}
	p("")
	p("## Method")
	p("")
	p("Each profile gets a private Dovecot on 127.0.0.1 (`internal/dovecottest`, its Maildirs on tmpfs) seeded with deterministic messages with CRLF line ends, in files named as Dovecot names the mail it delivers itself (with `,S=` and `,W=` sizes, so that it answers RFC822.SIZE and POP3 LIST from the name). Every client connects over implicit TLS (IMAPS, POP3S) and verifies the server's certificate. Every case runs as a process of its own, started by a tiny launcher (`bench/cmd/spawn`) that reaps it and reads its peak RSS (getrusage `ru_maxrss`), so the figure is its own and not that of the benchmark process (on Linux a child's `ru_maxrss` starts at the size of the process that spawned it; the launcher's own size is the floor, shown per profile); and every run is checked to have delivered every message and every octet (or, with nothing new, to have skipped them all). The cases of one run are interleaved, so a slow moment of the machine hits them alike.")
	p("")
	p("- **raw**: the limit, `bench/rawclient`: logs in, sends the whole fetch as one pipelined batch and discards the bytes (IMAP: `UID FETCH 1:* BODY.PEEK[]`; POP3: every `RETR n` in one write after `STAT`).")
	p("- **raw-new**: the limit for a run with nothing new: the least a client that remembers the highest UID asks, `UID FETCH n+1:* (UID)`.")
	p("- **raw-list**: for comparison, a full listing: `UID FETCH 1:* (UID RFC822.SIZE)`.")
	p("- **library**: `mailaccess.Fetcher` (KeepOnServer) over `imap.Dial` or `pop.Dial`, with a handler that copies each message to `io.Discard`; no State (nil) except in the incremental profiles, which use a `mailaccess.FileState` on tmpfs.")
	p("- **library, GOMAXPROCS=1**: the same in a process that runs Go code on one thread only, as `examples/retrieve` does: the difference is what handing each message from go-imap's reader goroutine to the caller's costs when the other CPU serves the mail.")
	p("- **retrieve**: the `examples/retrieve` binary (built once) into a fresh Maildir on tmpfs, with its file state; messages are made durable in groups (the Fetcher's Batch: 256 messages, 8 MiB or one second by default): each message is written into tmp/, and each group takes one syncfs, a rename per message, one fsync of new/ and one write and fsync of the state. *retrieve -batch N* is the same with groups of at most N messages.")
	if meta.Mbsync != "" {
		p("- **mbsync**: mbsync (isync), the fastest peer in the design notes, as `mbsync -c <file> -q <channel>` with a configuration written for each run into a fresh directory on tmpfs: IMAPS to the same Dovecot, trusting only the test certificate and verifying the host name (as `localhost`, which resolves to 127.0.0.1, since mbsync matches DNS names only), `Sync Pull New` of INBOX into a fresh Maildir there with `Create Near` and `Expunge None`, nothing pushed back; its exit status and the Maildir are checked, with each message's octets counted as on the server (mbsync stores LF line ends and adds an `X-TUID` header line, which the count undoes).")
	}
	p("")
	p("*wall* is the whole process's wall time, from its start to its exit (as for the peers in the design notes); msgs/s and MiB/s are computed from it. *x raw* is the median wall time over the raw baseline's median wall time measured in the same run; *x raw in-process* compares the time each process measured itself from the connection to the end of the session, without process start-up (raw and library only). Peak RSS is the largest of the runs. Noise between runs on small machines is about 20%%: compare ratios from one run, not absolute times from different runs.")
	p("")
	p("Where the library's own time and allocations go on the fetch path (pprof CPU and allocation profiles of the small profile, allocations per message, and the commands): [bench/PROFILE.md](bench/PROFILE.md).")
	for _, r := range results {
		if r.Incremental || r.Fleet != nil {
			continue
		}
		p("")
		p("## %s: %s", r.Name, r.Description)
		p("")
		p("%d messages, %.1f MiB; seeded in %.2f s; the first session after seeding (Dovecot indexes the Maildir) took %.2f s. A process that does nothing shows a peak RSS of %.1f MiB measured the same way. %s", r.Messages, mib(r.Bytes), r.Seed.Seconds(), r.FirstOpen.Seconds(), mib(r.Floor), loadNote(r, meta.CPUs))
		p("")
		p("| client | protocol | wall (s) | msgs/s | MiB/s | peak RSS (MiB) | x raw | x raw in-process |")
		p("|---|---|---:|---:|---:|---:|---:|---:|")
		for _, c := range r.Cases {
			p("| %s | %s | %.3f | %.0f | %.1f | %.1f | %s | %s |", c.Client(), strings.ToUpper(c.Proto), c.Wall.Seconds(),
				float64(c.Messages)/c.Wall.Seconds(), mib(c.Bytes)/c.Wall.Seconds(), mib(c.MaxRSS), ratio(c.Ratio), ratio(c.InProcRatio))
		}
		if note := accountRatio(r); note != "" {
			p("")
			p("%s", note)
		}
	}
	var incr []ProfileResult
	for _, r := range results {
		if r.Incremental {
			incr = append(incr, r)
		}
	}
	if len(incr) > 0 {
		p("")
		p("## incremental: IMAP, KeepOnServer, with a file state")
		p("")
		p("Mailboxes of n messages of %d octets; medians of %d measured runs after a warm-up. *first run*: the state is empty, every message is delivered; its baseline is the raw fetch. *no new mail*: the state holds a complete first run, nothing is delivered; its baseline is raw-new; *session (ms)* is the part of it that the process measured itself from before its connection to the end of the session (raw-new and library), that is without process start-up and without opening the state. raw-list, a full listing, is there for comparison.", IncrementMsg, incr[0].Runs)
		p("")
		p("| messages | client | first run (s) | msgs/s | peak RSS (MiB) | x raw | no new mail (s) | session (ms) | peak RSS (MiB) | x raw-new |")
		p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range incr {
			rows := []struct{ name, first, none string }{
				{"raw / raw-new", KindRaw, KindRawNew},
				{"raw-list", "", KindRawList},
				{"library", KindLibrary, KindLibrary},
				{"retrieve", KindRetrieve, KindRetrieve},
			}
			for _, row := range rows {
				n := r.Case(Case{Kind: row.none, Proto: IMAP, Phase: PhaseNoNew})
				if n == nil {
					continue
				}
				first := "| – | – | – | –"
				if f := r.Case(Case{Kind: row.first, Proto: IMAP, Phase: PhaseFirst}); f != nil {
					first = fmt.Sprintf("| %.3f | %.0f | %.1f | %s", f.Wall.Seconds(), float64(f.Messages)/f.Wall.Seconds(), mib(f.MaxRSS), ratio(f.Ratio))
				}
				session := "–"
				if n.InProc > 0 {
					session = fmt.Sprintf("%.1f", float64(n.InProc.Microseconds())/1000)
				}
				p("| %d | %s %s | %.3f | %s | %.1f | %s |", r.Messages, row.name, first, n.Wall.Seconds(), session, mib(n.MaxRSS), ratio(n.Ratio))
			}
		}
		p("")
		p("The first sessions after seeding are not measured runs: Dovecot indexes the new Maildir during the first (a raw fetch) and caches the message sizes during the second (a raw listing).")
		p("")
		p("| messages | seeding (s) | first session after seeding (s) | first listing (s) | load average before / after |")
		p("|---:|---:|---:|---:|---|")
		for _, r := range incr {
			p("| %d | %.2f | %.2f | %.2f | %.2f / %.2f |", r.Messages, r.Seed.Seconds(), r.FirstOpen.Seconds(), r.FirstList.Seconds(), r.LoadBefore, r.LoadAfter)
		}
	}
	for _, r := range results {
		if r.Fleet != nil {
			writeFleet(p, r, meta.CPUs)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// loadNote tells the load average around a profile, with a warning when
// other work kept the machine busy.
func loadNote(r ProfileResult, cpus int) string {
	if r.LoadBefore < 0 || r.LoadAfter < 0 {
		return ""
	}
	s := fmt.Sprintf("Load average before / after: %.2f / %.2f", r.LoadBefore, r.LoadAfter)
	// The benchmark itself (client and Dovecot) keeps about two CPUs busy.
	if max(r.LoadBefore, r.LoadAfter) > 2*float64(cpus) {
		s += fmt.Sprintf(" (more than twice the %d CPUs: other work shared the machine, so absolute times are inflated and noisy)", cpus)
	}
	return s + "."
}

func ratio(r float64) string {
	if r == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
