// Command unimail-bench measures how fast unimail takes mail from a real
// Dovecot, against a raw limit measured in the same run.
//
// For each profile (small: 2000 messages of about 3.9 KiB; mixed: 500
// messages from 1 KiB to 2 MiB; large: one 100 MiB message; incremental:
// IMAP mailboxes of 1,000, 10,000 and 100,000 messages, first run and a run
// with nothing new) it starts a private Dovecot on 127.0.0.1 (the
// internal/dovecottest harness), seeds it, and measures, per protocol, the
// raw baseline (bench/rawclient), the library (mailaccess.Fetcher over
// imap.Dial or pop.Dial, discarding the bytes), examples/retrieve (into
// a Maildir on tmpfs) and, over IMAP on the profiles that are not
// incremental, mbsync (isync) into a Maildir on tmpfs when mbsync is in
// $PATH (without it the report says so and the rest runs as before).
// Every measured case runs in a process of its own (this program
// re-executed with -child, the retrieve binary, or mbsync), so that its
// wall time and peak RSS are its own. It prints the results as
// Markdown tables and, with -o, writes them into a file (BENCHMARKS.md).
//
// Usage:
//
//	unimail-bench [-runs 5] [-profiles small,mixed,large,incremental,account,fleet]
//	              [-incremental-sizes 1000,10000,100000] [-incremental-runs 3]
//	              [-o BENCHMARKS.md]
//	              [-json results.json] [-retrieve PATH | -no-retrieve]
//	              [-retrieve-batches 64,256,1024]
//	              [-mbsync PATH | -no-mbsync]
//	              [-launcher PATH] [-client-timeout D] [-case-timeout 20m] [-cpuprofile DIR] [-workdir DIR]
//	              [-fleet-accounts 10000] [-fleet-push 1000] [-fleet-cases LIST] [-fleet-host-limit 32]
//	              [-command TEXT] [-commit TEXT]
//
// bench/run.sh is the usual way to run it. Without Dovecot installed it
// fails at once; it installs nothing.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/unimail/unimail/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unimail-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	child := fs.Bool("child", false, "run one job read as JSON from stdin and print its outcome (used by the benchmark itself)")
	fleetWorker := fs.Bool("fleet-worker", false, "be a worker process of the fleet profile, configured by JSON on stdin, until SIGTERM (used by the benchmark itself)")
	fleetAccounts := fs.Int("fleet-accounts", bench.FleetAccounts, "accounts of the fleet profile's sweeps")
	fleetCases := fs.String("fleet-cases", "", "limit the fleet profile's sweeps to these comma-separated `cases` (sqlite/1, postgres/1, postgres/3)")
	fleetHostLimit := fs.Int("fleet-host-limit", bench.FleetHostLimit, "Options.HostLimit of the fleet profile's worker processes")
	fleetPush := fs.Int("fleet-push", bench.FleetPushAccounts, "accounts of the fleet profile's push case (0: none)")
	runs := fs.Int("runs", 5, "measured runs of every case, after one warm-up run")
	profiles := fs.String("profiles", strings.Join(bench.DefaultProfiles, ","), "profiles to run: small, mixed, large, incremental, all, or none; and account and fleet, which all does not include")
	incrRuns := fs.Int("incremental-runs", 3, "measured runs of every case of the incremental profiles (a first run of 100,000 messages takes minutes)")
	sizes := fs.String("incremental-sizes", "1000,10000,100000", "mailbox sizes of the incremental profile")
	out := fs.String("o", "", "write the results as Markdown into this file (such as BENCHMARKS.md)")
	jsonOut := fs.String("json", "", "write the results as JSON into this file")
	retrieve := fs.String("retrieve", "", "examples/retrieve binary to measure (default: built from the module in the current directory)")
	launcher := fs.String("launcher", "", "bench/cmd/spawn binary that starts and measures each process (default: built from the module in the current directory)")
	noRetrieve := fs.Bool("no-retrieve", false, "leave examples/retrieve out")
	retrieveBatches := fs.String("retrieve-batches", "", "also measure retrieve with -batch set to each of these comma-separated `counts` (profiles that are not incremental)")
	mbsync := fs.String("mbsync", "", "mbsync (isync) binary to measure over IMAP (default: mbsync in $PATH; without one, the mbsync cases are left out)")
	noMbsync := fs.Bool("no-mbsync", false, "leave mbsync out")
	clientTimeout := fs.Duration("client-timeout", 0, "idle timeout of the library and retrieve instead of their default (0: the default)")
	caseTimeout := fs.Duration("case-timeout", 20*time.Minute, "kill a measured process that runs longer than this and fail (0: no limit)")
	cpuDir := fs.String("cpuprofile", "", "write a CPU profile of the last run of every library case into this directory")
	workDir := fs.String("workdir", "", "directory for Maildirs and state files (default: /dev/shm when it exists)")
	command := fs.String("command", "", "the command line to record in the results (default: this program's)")
	commit := fs.String("commit", "", "the commit of the code measured, to record in the results")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *child {
		return runChild(ctx, stdin, stdout, stderr)
	}
	if *fleetWorker {
		return runFleetWorker(ctx, stdin, stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unimail-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *runs < 1 || *incrRuns < 1 {
		fmt.Fprintln(stderr, "unimail-bench: -runs and -incremental-runs must be at least 1")
		return 2
	}
	batches, err := bench.ParseSizes(*retrieveBatches)
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: -retrieve-batches: %v\n", err)
		return 2
	}
	incr, err := bench.ParseSizes(*sizes)
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: -incremental-sizes: %v\n", err)
		return 2
	}
	profs, err := bench.ParseProfiles(*profiles, incr)
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: -profiles: %v\n", err)
		return 2
	}
	if len(profs) == 0 {
		fmt.Fprintln(stderr, "unimail-bench: no profile to run")
		return 0
	}
	if bench.DovecotPath() == "" {
		fmt.Fprintln(stderr, "unimail-bench: Dovecot is not installed (dovecot not found in $PATH or /usr/sbin); install dovecot-imapd and dovecot-pop3d")
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
		return 1
	}
	if *workDir == "" {
		*workDir = os.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			*workDir = "/dev/shm"
		}
	}
	work, err := os.MkdirTemp(*workDir, "unimail-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(work)
	if *cpuDir != "" {
		if err := os.MkdirAll(*cpuDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
			return 1
		}
	}
	if *launcher == "" {
		*launcher = filepath.Join(work, "spawn")
		if err := build(ctx, *launcher, "bench/cmd/spawn", stderr); err != nil {
			return 1
		}
	}
	if !*noRetrieve && *retrieve == "" {
		*retrieve = filepath.Join(work, "retrieve")
		if err := build(ctx, *retrieve, "examples/retrieve", stderr); err != nil {
			return 1
		}
	}
	if *noRetrieve {
		*retrieve = ""
	}
	mbsyncMissing := false
	switch {
	case *noMbsync:
		*mbsync = ""
	case *mbsync == "":
		*mbsync = bench.MbsyncPath()
		if *mbsync == "" {
			mbsyncMissing = true
			fmt.Fprintln(stderr, "unimail-bench: mbsync is not installed, so it is not measured (apt-get install isync adds it)")
		}
	}
	mbsyncVersion := ""
	if *mbsync != "" {
		if mbsyncVersion = bench.MbsyncVersion(*mbsync); mbsyncVersion == "" {
			fmt.Fprintf(stderr, "unimail-bench: %s --version failed: is it mbsync?\n", *mbsync)
			return 1
		}
		fmt.Fprintf(stderr, "unimail-bench: measuring %s (%s) over IMAP\n", mbsyncVersion, *mbsync)
	}
	if *command == "" {
		*command = strings.Join(append([]string{"unimail-bench"}, args...), " ")
	}
	meta := bench.CollectMeta(*command, *runs)
	meta.Commit = *commit
	meta.ClientTimeout = *clientTimeout
	meta.Mbsync, meta.MbsyncMissing = mbsyncVersion, mbsyncMissing

	r := &bench.Runner{
		Exe:             exe,
		ExeArgs:         []string{"-child"},
		Launcher:        []string{*launcher},
		Retrieve:        *retrieve,
		RetrieveBatches: batches,
		Mbsync:          *mbsync,
		Runs:            *runs,
		IncrementalRuns: *incrRuns,
		CaseTimeout:     *caseTimeout,
		ClientTimeout:   *clientTimeout,
		WorkDir:         work,
		CPUProfileDir:   *cpuDir,
		FleetAccounts:   *fleetAccounts,
		FleetPush:       *fleetPush,
		FleetHostLimit:  *fleetHostLimit,
		Log:             stderr,
	}
	if *fleetCases != "" {
		r.FleetCases = strings.Split(*fleetCases, ",")
	}
	if *fleetPush == 0 {
		r.FleetPush = -1
	}
	start := time.Now()
	var results []bench.ProfileResult
	for _, p := range profs {
		res, err := r.Run(ctx, p)
		if err != nil {
			fmt.Fprintf(stderr, "unimail-bench: profile %s: %v\n", p.Name, err)
			return 1
		}
		results = append(results, res)
	}
	fmt.Fprintf(stderr, "unimail-bench: done in %.1fs\n", time.Since(start).Seconds())

	var md bytes.Buffer
	if err := bench.WriteMarkdown(&md, meta, results); err != nil {
		fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
		return 1
	}
	stdout.Write(md.Bytes())
	if *out != "" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
			return 1
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(struct {
			Meta     bench.Meta            `json:"meta"`
			Profiles []bench.ProfileResult `json:"profiles"`
		}{meta, results}, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "unimail-bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// runChild runs one bench.Job read from stdin and prints its Outcome.
func runChild(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) int {
	var j bench.Job
	if err := json.NewDecoder(stdin).Decode(&j); err != nil {
		fmt.Fprintf(stderr, "unimail-bench -child: reading the job: %v\n", err)
		return 2
	}
	out, err := bench.RunJob(ctx, j, os.Getenv(bench.PasswordEnv))
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench -child: %s: %v\n", j.Kind, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		fmt.Fprintf(stderr, "unimail-bench -child: %v\n", err)
		return 1
	}
	return 0
}

// runFleetWorker is a worker process of the fleet profile: it reads its
// bench.FleetWorker from stdin and works until SIGTERM.
func runFleetWorker(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) int {
	var w bench.FleetWorker
	if err := json.NewDecoder(stdin).Decode(&w); err != nil {
		fmt.Fprintf(stderr, "unimail-bench -fleet-worker: reading the configuration: %v\n", err)
		return 2
	}
	if err := bench.RunFleetWorker(ctx, w, os.Getenv(bench.PasswordEnv), stdout); err != nil {
		fmt.Fprintf(stderr, "unimail-bench -fleet-worker: %v\n", err)
		return 1
	}
	return 0
}

// build builds the package pkg (a path inside this module) of the module
// in the current directory (or a parent) into path.
func build(ctx context.Context, path, pkg string, stderr io.Writer) error {
	fmt.Fprintf(stderr, "unimail-bench: building %s\n", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/unimail/unimail/"+pkg)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	err := cmd.Run()
	if err != nil {
		fmt.Fprintf(stderr, "unimail-bench: building %s: %v\n", pkg, err)
	}
	return err
}
