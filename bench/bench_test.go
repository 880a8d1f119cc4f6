package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// childEnv makes the test binary act as the benchmark's child: it runs the
// Job on its standard input and prints the Outcome, as unimail-bench -child
// does.
const childEnv = "UNIMAIL_BENCH_TEST_CHILD"

// testFleetWorkerEnv makes the test binary a worker process of the fleet
// profile, as unimail-bench -fleet-worker is.
const testFleetWorkerEnv = "UNIMAIL_BENCH_TEST_FLEET_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(testFleetWorkerEnv) == "1" {
		os.Exit(fleetWorkerMain())
	}
	if os.Getenv(childEnv) == "1" {
		var j Job
		if err := json.NewDecoder(os.Stdin).Decode(&j); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		out, err := RunJob(context.Background(), j, os.Getenv(PasswordEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(out)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// wellFormed fails unless every line of m ends with CRLF and the header
// ends with an empty line.
func wellFormed(t *testing.T, name string, m []byte) {
	t.Helper()
	if !bytes.HasSuffix(m, []byte("\r\n")) {
		t.Errorf("%s does not end with CRLF", name)
	}
	if bytes.Count(m, []byte("\n")) != bytes.Count(m, []byte("\r\n")) || bytes.Count(m, []byte("\r")) != bytes.Count(m, []byte("\r\n")) {
		t.Errorf("%s has a bare CR or LF", name)
	}
	if headerEnd(m) == len(m) {
		t.Errorf("%s has no end of header", name)
	}
}

func TestMessages(t *testing.T) {
	for _, size := range []int{1024, 3800, 4000, 4200, 70000} {
		m := Message(7, size)
		if len(m) != size {
			t.Errorf("Message(7, %d) has %d octets", size, len(m))
		}
		wellFormed(t, fmt.Sprintf("Message(7, %d)", size), m)
		if !bytes.Equal(m, Message(7, size)) {
			t.Errorf("Message(7, %d) is not deterministic", size)
		}
	}
	if bytes.Equal(Message(1, 4000), Message(2, 4000)) {
		t.Error("messages 1 and 2 are equal")
	}
	if !bytes.Contains(Message(3, 8000), []byte("\r\n.")) {
		t.Error("no line starts with a dot: POP3 dot-stuffing is not exercised")
	}
	for _, size := range []int{256 << 10, 1<<20 + 3} {
		m := LargeMessage(1, size)
		if len(m) != size {
			t.Errorf("LargeMessage(1, %d) has %d octets", size, len(m))
		}
		wellFormed(t, fmt.Sprintf("LargeMessage(1, %d)", size), m)
		if !bytes.HasSuffix(m, []byte("--unimail-bench-boundary--\r\n")) {
			t.Errorf("LargeMessage(1, %d) does not end with the closing boundary", size)
		}
	}

	small := SmallMessages(200)
	for i, m := range small {
		if len(m) < 3800 || len(m) > 4200 {
			t.Errorf("small message %d has %d octets", i, len(m))
		}
	}
	// The mixed profile's function, up to 512 KiB to keep the test fast.
	const mixedMax = 512 << 10
	mixed := MixedMessages(60, MixedMin, mixedMax)
	var under, over int
	for i, m := range mixed {
		if len(m) < MixedMin || len(m) > mixedMax {
			t.Errorf("mixed message %d has %d octets", i, len(m))
		}
		if len(m) < 32<<10 {
			under++
		}
		if len(m) > 256<<10 {
			over++
		}
	}
	if under == 0 || over == 0 {
		t.Errorf("mixed sizes are not spread: %d under 32 KiB, %d over 256 KiB", under, over)
	}
	if !bytes.Equal(bytes.Join(mixed, nil), bytes.Join(MixedMessages(60, MixedMin, mixedMax), nil)) {
		t.Error("MixedMessages is not deterministic")
	}
}

func TestParseProfiles(t *testing.T) {
	ps, err := ParseProfiles("small, incremental,small", []int{10, 20})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "small incremental-10 incremental-20" {
		t.Errorf("profiles %q", got)
	}
	if ps[2].Size != 20 || !ps[2].Incremental || len(ps[2].Messages()) != 20 {
		t.Errorf("incremental-20: %+v", ps[2])
	}
	all, err := ParseProfiles("all", DefaultIncrementalSizes)
	if err != nil || len(all) != 3+len(DefaultIncrementalSizes) {
		t.Errorf("all: %d profiles, %v", len(all), err)
	}
	if none, err := ParseProfiles("none", nil); err != nil || len(none) != 0 {
		t.Errorf("none: %d profiles, %v", len(none), err)
	}
	if _, err := ParseProfiles("small,huge", nil); err == nil {
		t.Error("unknown profile accepted")
	}
	if s, err := ParseSizes("1000, 10000"); err != nil || len(s) != 2 || s[1] != 10000 {
		t.Errorf("ParseSizes: %v, %v", s, err)
	}
	for _, bad := range []string{"0", "-1", "x"} {
		if _, err := ParseSizes(bad); err == nil {
			t.Errorf("ParseSizes(%q) accepted", bad)
		}
	}
}

func TestMedianAndParsers(t *testing.T) {
	if m := Median([]time.Duration{5, 1, 3}); m != 3 {
		t.Errorf("median of 5 1 3 = %d", m)
	}
	if m := Median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("median of 4 1 3 2 = %d", m)
	}
	if m := Median(nil); m != 0 {
		t.Errorf("median of nothing = %d", m)
	}
	out, err := parseSummary("delivered=3 skipped=2 deleted=0 bytes=1234\n")
	if err != nil || out.Messages != 3 || out.Skipped != 2 || out.Bytes != 1234 {
		t.Errorf("parseSummary: %+v, %v", out, err)
	}
	if _, err := parseSummary("retrieve: connection refused\n"); err == nil {
		t.Error("parseSummary accepted a line without a summary")
	}
	s, code, err := parseSpawnReport("1500000 9437184 0\n")
	if err != nil || s.Wall != 1500*time.Microsecond || s.MaxRSS != 9<<20 || code != 0 {
		t.Errorf("parseSpawnReport: %+v %d %v", s, code, err)
	}
	if _, _, err := parseSpawnReport("12 x 0"); err == nil {
		t.Error("parseSpawnReport accepted garbage")
	}
}

// seedCorpus seeds srv with messages that exercise the framing of both
// protocols and returns them.
func seedCorpus(t *testing.T, srv *dovecottest.Server) [][]byte {
	t.Helper()
	msgs := SmallMessages(30)
	msgs = append(msgs,
		[]byte("Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nend\r\n"),
		[]byte("Subject: long line\r\n\r\n"+strings.Repeat("z", 100<<10)+"\r\n"),
		LargeMessage(99, 300<<10),
	)
	srv.Seed(t, benchUser, "INBOX", msgs)
	return msgs
}

// target returns the Target of srv for proto, with the CA in a file.
func target(t testing.TB, srv *dovecottest.Server, proto string) Target {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := srv.IMAPSAddr
	if proto == POP3 {
		addr = srv.POP3SAddr
	}
	return Target{Proto: proto, Addr: addr, CAFile: ca, User: benchUser}
}

// TestRawMatchesLibrary checks against a real Dovecot that the raw clients
// and the library deliver the same messages and octets, which are the ones
// seeded.
func TestRawMatchesLibrary(t *testing.T) {
	srv := dovecottest.Start(t, nil)
	msgs := seedCorpus(t, srv)
	n, size := len(msgs), TotalBytes(msgs)
	for _, proto := range []string{IMAP, POP3} {
		tg := target(t, srv, proto)
		raw, err := Raw(t.Context(), KindRaw, tg, benchPassword, n, 0)
		if err != nil {
			t.Fatalf("raw %s: %v", proto, err)
		}
		lib, err := Library(t.Context(), tg, benchPassword, nil)
		if err != nil {
			t.Fatalf("library %s: %v", proto, err)
		}
		for name, o := range map[string]Outcome{"raw": raw, "library": lib} {
			if o.Messages != n || o.Bytes != size {
				t.Errorf("%s %s: %d messages, %d octets; want %d and %d", name, proto, o.Messages, o.Bytes, n, size)
			}
			if o.Elapsed <= 0 {
				t.Errorf("%s %s: elapsed %v", name, proto, o.Elapsed)
			}
		}
	}
	list, err := Raw(t.Context(), KindRawList, target(t, srv, IMAP), benchPassword, n, 0)
	if err != nil || list.Messages != n || list.Bytes != size {
		t.Errorf("raw list: %+v, %v; want %d messages and %d octets", list, err, n, size)
	}
	for after, want := range map[uint32]int{uint32(n): 0, uint32(n - 3): 3, 0: n} {
		got, err := Raw(t.Context(), KindRawNew, target(t, srv, IMAP), benchPassword, want, after)
		if err != nil || got.Messages != want {
			t.Errorf("raw new after UID %d: %+v, %v; want %d", after, got, err, want)
		}
	}
	if _, err := Raw(t.Context(), KindRaw, target(t, srv, IMAP), benchPassword, n+1, 0); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Errorf("raw IMAP expecting one message too many: %v, want ErrProtocol", err)
	}
	if got := srv.Messages(t, benchUser, "INBOX"); len(got) != n {
		t.Errorf("%d messages left on the server, want %d", len(got), n)
	}
}

// TestStartDovecotProgram checks the entry point that a program (not a
// test) uses to start Dovecot.
func TestStartDovecotProgram(t *testing.T) {
	srv, err := StartDovecot()
	if errors.Is(err, ErrNoDovecot) && os.Getenv(dovecottest.RequireEnv) != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.Dir
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	msgs := SmallMessages(5)
	if err := srv.Seed(benchUser, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	if err := srv.Seed(benchUser, "no/such..folder", msgs); err == nil {
		t.Error("Seed into an invalid folder did not fail")
	}
	tg := Target{Proto: IMAP, Addr: srv.IMAPSAddr, CAFile: filepath.Join(t.TempDir(), "ca.pem"), User: benchUser}
	if err := os.WriteFile(tg.CAFile, srv.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Raw(t.Context(), KindRaw, tg, benchPassword, len(msgs), 0)
	if err != nil || out.Bytes != TotalBytes(msgs) {
		t.Fatalf("raw fetch: %+v, %v", out, err)
	}
	srv.Close()
	closed = true
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s behind (%v)", dir, err)
	}
	if _, err := Raw(t.Context(), KindRaw, tg, benchPassword, -1, 0); !errors.Is(err, mailaccess.ErrConnection) {
		t.Errorf("fetch after Close: %v, want ErrConnection", err)
	}
}

// build builds a package of this module into dir and returns the binary.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", out, "github.com/unimail/unimail/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestRunnerTiny runs the whole benchmark machinery on tiny profiles:
// Dovecot, the launcher, child processes (this test binary), retrieve,
// the checks of every run, and the report.
func TestRunnerTiny(t *testing.T) {
	if DovecotPath() == "" && os.Getenv(dovecottest.RequireEnv) != "1" {
		t.Skip("Dovecot is not installed")
	}
	bin := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childEnv, "1") // for the children only: TestMain has run
	// A child built with -race would otherwise sleep a second at exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	r := &Runner{
		Exe:      exe,
		Launcher: []string{build(t, bin, "bench/cmd/spawn")},
		Retrieve: build(t, bin, "examples/retrieve"),
		Runs:     1,
		WorkDir:  t.TempDir(),
	}
	var log bytes.Buffer
	r.Log = &log
	profiles := []Profile{
		{Name: "tiny", Description: "12 messages", Protocols: []string{IMAP, POP3},
			Messages: func() [][]byte { return append(SmallMessages(11), LargeMessage(0, 200<<10)) }},
		{Name: "tiny-incremental", Description: "15 messages", Protocols: []string{IMAP}, Incremental: true, Size: 15,
			Messages: func() [][]byte { return SmallMessages(15) }},
	}
	var results []ProfileResult
	for _, p := range profiles {
		res, err := r.Run(t.Context(), p)
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.Name, err, log.String())
		}
		results = append(results, res)
	}

	tiny := results[0]
	if len(tiny.Cases) != 8 {
		t.Fatalf("tiny has %d cases, want 8 (raw, library, library on one thread, retrieve; for each protocol)", len(tiny.Cases))
	}
	for _, c := range tiny.Cases {
		if len(c.Samples) != 1 || c.Wall <= 0 || c.Ratio <= 0 || c.Messages != 12 {
			t.Errorf("%s: %+v", c.Case, c)
		}
		if c.MaxRSS <= tiny.Floor || tiny.Floor <= 0 {
			t.Errorf("%s: peak RSS %d, floor %d", c.Case, c.MaxRSS, tiny.Floor)
		}
		if (c.Kind == KindRetrieve) != (c.InProc == 0) {
			t.Errorf("%s: in-process time %v", c.Case, c.InProc)
		}
		if c.Kind == KindLibraryOneThread && c.Samples[0].Procs != 1 {
			t.Errorf("%s: ran with GOMAXPROCS %d", c.Case, c.Samples[0].Procs)
		}
		if c.Kind == KindRaw && (c.Ratio != 1 || c.InProcRatio != 1) {
			t.Errorf("%s: ratio %v, in-process %v, want 1", c.Case, c.Ratio, c.InProcRatio)
		}
	}
	incr := results[1]
	if len(incr.Cases) != 7 {
		t.Fatalf("tiny-incremental has %d cases, want 7", len(incr.Cases))
	}
	if c := incr.Case(Case{Kind: KindLibrary, Proto: IMAP, Phase: PhaseNoNew}); c == nil || c.Messages != 0 || c.Ratio <= 0 {
		t.Errorf("library no-new: %+v", c)
	}

	// A case over its time limit is killed and fails the profile.
	r.CaseTimeout = time.Nanosecond
	if _, err := r.Run(t.Context(), profiles[0]); err == nil || !strings.Contains(err.Error(), "took longer than") {
		t.Errorf("a case over CaseTimeout: %v", err)
	}

	var md bytes.Buffer
	meta := CollectMeta("test", r.Runs)
	if meta.Dovecot == "" {
		t.Error("no Dovecot version in the report's meta data")
	}
	if err := WriteMarkdown(&md, meta, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## tiny: 12 messages", "| library | POP3 |", "| retrieve | IMAP |", "## incremental", "| 15 | raw / raw-new |", "| 15 | raw-list | – |", "- Dovecot: " + meta.Dovecot + "\n", "(bench/PROFILE.md)"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}

// BenchmarkFetchIMAP measures the library on the small profile over IMAP
// (Fetcher, KeepOnServer, nil State, the bytes discarded), and reports
// msgs/s and x-raw: the time of one fetch over the median of raw fetches
// measured just before, in the same process; cpu-ms/op, the CPU time
// (user and system) of this process per fetch, and x-raw-cpu, that over
// the mean CPU time of those raw fetches, which a busy machine disturbs
// less than wall time.
func BenchmarkFetchIMAP(b *testing.B) { benchmarkFetch(b, IMAP, false, nil) }

// BenchmarkFetchPOP3 is BenchmarkFetchIMAP over POP3.
func BenchmarkFetchPOP3(b *testing.B) { benchmarkFetch(b, POP3, false, nil) }

// BenchmarkFetchIMAPState is BenchmarkFetchIMAP with a fresh
// mailaccess.MemoryState for every fetch, so that every message is also
// fingerprinted (SHA-256) and recorded.
func BenchmarkFetchIMAPState(b *testing.B) { benchmarkFetch(b, IMAP, false, newMemoryState) }

// BenchmarkFetchPOP3State is BenchmarkFetchIMAPState over POP3.
func BenchmarkFetchPOP3State(b *testing.B) { benchmarkFetch(b, POP3, false, newMemoryState) }

func newMemoryState() mailaccess.State { return &mailaccess.MemoryState{} }

// BenchmarkRawIMAP measures the raw IMAP baseline on the small profile.
func BenchmarkRawIMAP(b *testing.B) { benchmarkFetch(b, IMAP, true, nil) }

// BenchmarkRawPOP3 measures the raw POP3 baseline on the small profile.
func BenchmarkRawPOP3(b *testing.B) { benchmarkFetch(b, POP3, true, nil) }

// benchmarkFetch runs the benchmarks above; state, when not nil, makes
// the State of each library fetch.
func benchmarkFetch(b *testing.B, proto string, raw bool, state func() mailaccess.State) {
	srv := dovecottest.Start(b, nil)
	msgs := SmallMessages(SmallCount)
	srv.Seed(b, benchUser, "INBOX", msgs)
	n, size := len(msgs), TotalBytes(msgs)
	msgs = nil
	tg := target(b, srv, proto)
	check := func(what string, out Outcome, err error) {
		b.Helper()
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		if out.Messages != n || out.Bytes != size {
			b.Fatalf("%s: %d messages and %d octets, want %d and %d", what, out.Messages, out.Bytes, n, size)
		}
	}
	// One warm-up (Dovecot indexes the new Maildir), then the baseline.
	var (
		raws   []time.Duration
		rawCPU time.Duration
	)
	for i := range 6 {
		c0 := cpuTime()
		out, err := Raw(b.Context(), KindRaw, tg, benchPassword, n, 0)
		check("raw", out, err)
		if i > 0 {
			raws = append(raws, out.Elapsed)
			rawCPU += cpuTime() - c0
		}
	}
	rawMedian := Median(raws)
	b.SetBytes(size)
	cpu0 := cpuTime()
	for b.Loop() {
		if raw {
			out, err := Raw(b.Context(), KindRaw, tg, benchPassword, n, 0)
			check("raw", out, err)
		} else {
			var st mailaccess.State
			if state != nil {
				st = state()
			}
			out, err := Library(b.Context(), tg, benchPassword, st)
			check("library", out, err)
		}
	}
	cpu := cpuTime() - cpu0
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(n)/perOp.Seconds(), "msgs/s")
	b.ReportMetric(float64(perOp)/float64(rawMedian), "x-raw")
	if cpu > 0 {
		// CPU time depends less on what else the machine runs than wall
		// time does (though not at all is too much to hope).
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(cpu)/float64(b.N)/(float64(rawCPU)/float64(len(raws))), "x-raw-cpu")
	}
}

// TestSpawnedCanceled checks that ending the context kills the launcher
// and the measured process with it.
func TestSpawnedCanceled(t *testing.T) {
	launcher := build(t, t.TempDir(), "bench/cmd/spawn")
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$0"; exec sleep 30`, pidFile)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := spawned(ctx, cmd, []string{launcher}); done <- err }()
	var pid int
	for pid == 0 {
		select {
		case err := <-done:
			t.Fatalf("returned before it was canceled: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		b, _ := os.ReadFile(pidFile)
		fmt.Sscan(string(b), &pid)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a killed process reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("spawned did not return after the context ended")
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the measured process %d outlived the canceled launcher", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

// asMbsyncStores returns message m as mbsync stores it in a Maildir: LF
// line ends and an X-TUID line at the end of the header.
func asMbsyncStores(m []byte, tuid string) []byte {
	lf := bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
	end := bytes.Index(lf, []byte("\n\n"))
	return slices.Concat(lf[:end+1], []byte(tuidHeader+tuid+"\n"), lf[end+1:])
}

// undoMbsync turns a message that mbsync stored back into the octets it
// had on the server (the benchmark's messages have CRLF line ends only).
func undoMbsync(t *testing.T, b []byte) []byte {
	t.Helper()
	end := bytes.Index(b, []byte("\n\n"))
	i := bytes.Index(b[:end+1], []byte("\n"+tuidHeader))
	if end < 0 || i < 0 {
		t.Fatalf("no X-TUID line in the header of %.200q", b)
	}
	j := i + 1 + bytes.IndexByte(b[i+1:], '\n')
	b = slices.Concat(b[:i+1], b[j+1:])
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func TestMbsyncConfig(t *testing.T) {
	for in, want := range map[string]string{`pass`: `"pass"`, `a "b" \c`: `"a \"b\" \\c"`, `ü ä`: `"ü ä"`} {
		if got, err := mbsyncQuote(in); err != nil || got != want {
			t.Errorf("mbsyncQuote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\nb", "a\rb", "a\x00b", "a\tb"} {
		if _, err := mbsyncQuote(bad); err == nil {
			t.Errorf("mbsyncQuote(%q) accepted", bad)
		}
	}

	tg := Target{Proto: IMAP, Addr: "127.0.0.1:9993", CAFile: "/x/ca.pem", User: "alice", Timeout: 1500 * time.Millisecond}
	dir := t.TempDir()
	rc, err := writeMbsyncrc(dir, tg, `se"cret`)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(rc)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", rc, fi, err)
	}
	b, _ := os.ReadFile(rc)
	for _, want := range []string{"\nHost localhost\n", "\nPort 9993\n", "\nUser \"alice\"\n", "\nPass \"se\\\"cret\"\n",
		"\nSSLType IMAPS\n", "\nSystemCertificates no\n", "\nCertificateFile \"/x/ca.pem\"\n", "\nTimeout 2\n",
		"\nPath \"" + dir + "/mail/\"\n", "\nInbox \"" + dir + "/mail/INBOX\"\n", "\nChannel " + mbsyncChannel + "\n",
		"\nFar :far:INBOX\n", "\nNear :near:INBOX\n", "\nSync Pull New\n", "\nCreate Near\n", "\nExpunge None\n",
		"\nSyncState \"" + dir + "/state/\"\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("mbsyncrc lacks %q:\n%s", want, b)
		}
	}
	for _, d := range []string{"mail", "state"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, err := writeMbsyncrc(t.TempDir(), tg, "pass\r\nChannel x"); err == nil {
		t.Error("a password with CRLF accepted")
	}
	if _, err := writeMbsyncrc(t.TempDir(), Target{Proto: POP3, Addr: "127.0.0.1:995"}, "p"); err == nil {
		t.Error("a POP3 target accepted")
	}

	// The Maildir check counts the octets as they were on the server.
	msgs := append(SmallMessages(4), []byte("Subject: dots\r\n\r\n.\r\n..\r\nend\r\n"), LargeMessage(3, 64<<10))
	md := t.TempDir()
	for _, d := range []string{"new", "cur", "tmp"} {
		if err := os.Mkdir(filepath.Join(md, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(md, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range msgs {
		sub := "new"
		if i%2 == 1 {
			sub = "cur"
		}
		s := asMbsyncStores(m, fmt.Sprintf("tuid%08d", i))
		if !bytes.Equal(undoMbsync(t, s), m) {
			t.Fatalf("message %d does not survive the round trip", i)
		}
		write(fmt.Sprintf("%s/%d.x,U=%d:2,", sub, i, i+1), s)
	}
	out, err := mbsyncMaildir(md)
	if err != nil || out.Messages != len(msgs) || out.Bytes != TotalBytes(msgs) {
		t.Errorf("mbsyncMaildir: %+v, %v; want %d messages and %d octets", out, err, len(msgs), TotalBytes(msgs))
	}
	if n, err := serverOctets(msgs[0]); err == nil {
		t.Errorf("a message without X-TUID: %d, nil", n)
	}
	if _, err := serverOctets(asMbsyncStores(asMbsyncStores(msgs[0], "a"), "b")); err == nil {
		t.Error("a message with two X-TUID lines accepted")
	}
	// An X-TUID line in a message kept with CRLF line ends counts too.
	crlf := asMbsyncStores(msgs[1], "c")
	crlf = bytes.ReplaceAll(crlf, []byte("\n"), []byte("\r\n"))
	if n, err := serverOctets(crlf); err != nil || n != int64(len(msgs[1])) {
		t.Errorf("a message kept with CRLF: %d, %v; want %d", n, err, len(msgs[1]))
	}
	write("tmp/partial", []byte("X"))
	if _, err := mbsyncMaildir(md); err == nil {
		t.Error("a file left in tmp/ accepted")
	}

	var report bytes.Buffer
	if err := WriteMarkdown(&report, Meta{MbsyncMissing: true}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.String(), "- mbsync: not installed, so not measured; `apt-get install isync`") {
		t.Errorf("the report does not say that mbsync is missing:\n%s", report.String())
	}
}

// TestMbsyncCase runs the mbsync case against a real Dovecot: once
// directly, comparing what it stored with what was seeded, and once as a
// case of a tiny profile of the Runner, with the report. It is skipped
// when mbsync is not installed.
func TestMbsyncCase(t *testing.T) {
	mbsync := MbsyncPath()
	if mbsync == "" {
		t.Skip("mbsync is not installed (Debian: apt-get install isync)")
	}
	srv := dovecottest.Start(t, nil)
	msgs := seedCorpus(t, srv)
	r := &Runner{Launcher: []string{build(t, t.TempDir(), "bench/cmd/spawn")}, Mbsync: mbsync}
	m := &measure{r: r, work: t.TempDir(), n: len(msgs), bytes: TotalBytes(msgs)}
	tg := target(t, srv, IMAP)

	// Directly, keeping the Maildir to compare it with what was seeded.
	dir := t.TempDir()
	rc, err := writeMbsyncrc(dir, tg, benchPassword)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(mbsync, "-c", rc, "-q", mbsyncChannel)
	cmd.Stderr = &stderr
	if _, err := r.runMeasured(t.Context(), cmd); err != nil {
		t.Fatalf("mbsync: %v: %s", err, stderr.String())
	}
	inbox := filepath.Join(dir, "mail", "INBOX")
	out, err := mbsyncMaildir(inbox)
	if err != nil || out.Messages != m.n || out.Bytes != m.bytes {
		t.Fatalf("mbsync Maildir: %+v, %v; want %d messages and %d octets", out, err, m.n, m.bytes)
	}
	want := map[string]int{}
	for _, msg := range msgs {
		want[string(msg)]++
	}
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(inbox, sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(inbox, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if s := string(undoMbsync(t, b)); want[s] > 0 {
				want[s]--
			} else {
				t.Errorf("%s/%s is not a seeded message: %.200q", sub, e.Name(), b)
			}
		}
	}
	// Nothing changed on the server: every message is there, none Seen.
	if got := srv.Messages(t, benchUser, "INBOX"); len(got) != m.n {
		t.Errorf("%d messages on the server after mbsync, want %d", len(got), m.n)
	}
	files := 0
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(srv.Dir, "home", benchUser, "Maildir", sub))
		for _, e := range ents {
			files++
			if _, flags, _ := strings.Cut(e.Name(), ":2,"); strings.Contains(flags, "S") {
				t.Errorf("mbsync marked %s Seen on the server", e.Name())
			}
		}
	}
	if files != m.n {
		t.Errorf("%d message files in the server's Maildir, want %d", files, m.n)
	}

	// The case as the runner runs it: its own directory, removed after.
	out, s, err := m.mbsync(t.Context(), tg)
	if err != nil || out.Messages != m.n || out.Bytes != m.bytes || s.Wall <= 0 || s.MaxRSS <= 0 {
		t.Errorf("mbsync case: %+v, %+v, %v", out, s, err)
	}
	if ents, _ := os.ReadDir(m.work); len(ents) != 0 {
		t.Errorf("the mbsync case left %d entries in its work directory", len(ents))
	}
	// A failing mbsync fails the case, with its exit status and message.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := tg
	closed.Addr = l.Addr().String()
	l.Close()
	if _, _, err := m.mbsync(t.Context(), closed); err == nil || !strings.Contains(err.Error(), "exited with status") {
		t.Errorf("mbsync against a closed port: %v", err)
	}

	// A tiny profile of the Runner: raw, library and mbsync over IMAP.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childEnv, "1")
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	r.Exe, r.Runs, r.WorkDir = exe, 1, t.TempDir()
	var log bytes.Buffer
	r.Log = &log
	res, err := r.Run(t.Context(), Profile{Name: "tiny-mbsync", Description: "8 messages", Protocols: []string{IMAP},
		Messages: func() [][]byte { return append(SmallMessages(7), LargeMessage(0, 200<<10)) }})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(res.Cases) != 4 || res.Cases[3].Kind != KindMbsync {
		t.Fatalf("cases %+v, want raw, library, library on one thread, mbsync", res.Cases)
	}
	c := res.Cases[3]
	if len(c.Samples) != 1 || c.Wall <= 0 || c.Ratio <= 0 || c.Messages != 8 || c.InProc != 0 || c.MaxRSS <= res.Floor {
		t.Errorf("mbsync case: %+v (floor %d)", c, res.Floor)
	}
	meta := Meta{Mbsync: MbsyncVersion(mbsync)}
	if meta.Mbsync == "" {
		t.Error("no mbsync version")
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, meta, []ProfileResult{res}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| mbsync | IMAP |", "- mbsync: " + meta.Mbsync + ",", "- **mbsync**:"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
