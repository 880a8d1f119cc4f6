#!/bin/sh
# Runs the unimail benchmark against a private Dovecot on 127.0.0.1 and
# writes the results into BENCHMARKS.md at the repository root.
#
# Usage (from anywhere; paths are relative to the repository root):
#
#   ./bench/run.sh [-runs N] [-profiles LIST] [-incremental-sizes LIST]
#                  [-incremental-runs N] [-client-timeout D] [-o FILE] [-json FILE]
#                  [-retrieve-batches LIST] [-cpuprofile DIR] [-long]
#
#   -runs N                measured runs per case after one warm-up
#                          (default 5; env BENCH_RUNS)
#   -profiles LIST         small,mixed,large,incremental, all or none, and
#                          account (20 folders of 500 messages fetched as a
#                          whole account, next to the same 10,000 messages
#                          in one folder; not part of all), and fleet
#                          (package fleet over 10,000 IMAPS accounts on one
#                          Dovecot, one new message each: a sweep and a
#                          sweep with nothing new on SQLite and on
#                          PostgreSQL with 1 and 3 worker processes, and
#                          1,000 accounts held in IDLE; not part of all;
#                          PostgreSQL 15's initdb and postgres must be
#                          installed for its PostgreSQL cases)
#                          (default all; env BENCH_PROFILES)
#   -incremental-sizes L   mailbox sizes of the incremental profile
#                          (default 1000,10000,100000; env BENCH_INCREMENTAL_SIZES)
#   -incremental-runs N    measured runs per case of the incremental profile
#                          (default 3; env BENCH_INCREMENTAL_RUNS)
#   -client-timeout D      idle timeout of the library and retrieve instead
#                          of their default, such as 10m (env BENCH_CLIENT_TIMEOUT)
#   -retrieve-batches L    also measure retrieve with -batch set to each of
#                          these counts, such as 64,256,1024 (profiles that
#                          are not incremental; env BENCH_RETRIEVE_BATCHES)
#   -o FILE                where the Markdown goes (default BENCHMARKS.md;
#                          "-" prints it only)
#   -json FILE             also write the raw results as JSON
#   -cpuprofile DIR        CPU profiles of the last run of each library case
#   -long                  afterwards, run the long tests: fault schedules,
#                          kills and fuzzing that take many minutes (env BENCH_LONG=1);
#                          see run_long below
#
# Go must be there. When Dovecot 2.3 or mbsync is missing, it installs
# Debian's dovecot-imapd, dovecot-pop3d and isync with apt-get (as root or
# through sudo; see scripts/install-packages.sh). mbsync, the fastest
# peer, is measured over IMAP next to examples/retrieve; when isync cannot
# be installed, the report says so in one line and the rest runs as
# before. The server runs as the current user (or as nobody when run as
# root), on free ports of 127.0.0.1, with its files on /dev/shm.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

runs=${BENCH_RUNS:-5}
profiles=${BENCH_PROFILES:-all}
sizes=${BENCH_INCREMENTAL_SIZES:-1000,10000,100000}
incr_runs=${BENCH_INCREMENTAL_RUNS:-3}
client_timeout=${BENCH_CLIENT_TIMEOUT:-}
retrieve_batches=${BENCH_RETRIEVE_BATCHES:-}
out=BENCHMARKS.md
json=""
cpuprofile=""
long=${BENCH_LONG:-0}
args="$*"

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	-runs | --runs) runs=$2; shift 2 ;;
	-profiles | --profiles) profiles=$2; shift 2 ;;
	-incremental-sizes | --incremental-sizes) sizes=$2; shift 2 ;;
	-incremental-runs | --incremental-runs) incr_runs=$2; shift 2 ;;
	-client-timeout | --client-timeout) client_timeout=$2; shift 2 ;;
	-retrieve-batches | --retrieve-batches) retrieve_batches=$2; shift 2 ;;
	-o) out=$2; shift 2 ;;
	-json | --json) json=$2; shift 2 ;;
	-cpuprofile | --cpuprofile) cpuprofile=$2; shift 2 ;;
	-long | --long) long=1; shift ;;
	-h | -help | --help) usage ;;
	*) echo "run.sh: unknown option $1" >&2; usage ;;
	esac
done

# run_long is the entry point of the long checks: the reliability tests
# with UNIMAIL_LONG=1, which run their large variants (5000 random fault
# schedules per protocol against Dovecot, 200 kills per protocol and
# retention, 100 rounds of torn state files; see internal/reliability),
# then every fuzz target.
run_long() {
	echo "run.sh: long tests: UNIMAIL_LONG=1 go test -count=1 -timeout 0 -v ./internal/reliability" >&2
	UNIMAIL_LONG=1 UNIMAIL_REQUIRE_DOVECOT=1 go test -count=1 -timeout 0 -v ./internal/reliability
	# Every fuzz target of the module, for BENCH_FUZZTIME each (default
	# 60s); what a fuzzer finds lands in that package's testdata/fuzz.
	# A target that fails is run once more: on a loaded machine the fuzzing
	# engine can end with "context deadline exceeded" and no finding; a
	# real finding fails again (the input is kept in testdata/fuzz).
	fuzztime=${BENCH_FUZZTIME:-60s}
	failed=""
	for file in $(grep -rl --include='*_test.go' '^func Fuzz' .); do
		dir=$(dirname "$file")
		for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
			echo "run.sh: fuzzing $target in $dir for $fuzztime" >&2
			if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$dir"; then
				echo "run.sh: $target failed; running it once more" >&2
				go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$dir" || failed="$failed $target"
			fi
		done
	done
	if [ -n "$failed" ]; then
		echo "run.sh: fuzz targets that failed:$failed" >&2
		return 1
	fi
}

if ! command -v go >/dev/null 2>&1; then
	echo "run.sh: go is not in \$PATH" >&2
	exit 1
fi
if [ "$profiles" != "none" ]; then
	# Dovecot, and mbsync to compare with when it can be had.
	scripts/install-packages.sh dovecot:dovecot-imapd,dovecot-pop3d
	scripts/install-packages.sh mbsync:isync || echo "run.sh: could not install isync; mbsync is not measured" >&2
	dovecot=""
	if command -v dovecot >/dev/null 2>&1; then
		dovecot=$(command -v dovecot)
	else
		for d in /usr/sbin /usr/local/sbin; do
			[ -x "$d/dovecot" ] && dovecot="$d/dovecot" && break
		done
	fi
	if [ -z "$dovecot" ]; then
		echo "run.sh: Dovecot is not installed (no dovecot in \$PATH, /usr/sbin or /usr/local/sbin)." >&2
		echo "run.sh: install Dovecot 2.3 (Debian: apt-get install dovecot-imapd dovecot-pop3d)." >&2
		exit 1
	fi
	export PATH="$PATH:$(dirname "$dovecot")"
	echo "run.sh: $("$dovecot" --version | sed 's/^/Dovecot /'), $(go version)" >&2
	if command -v mbsync >/dev/null 2>&1; then
		echo "run.sh: $(mbsync --version 2>/dev/null || echo "mbsync of unknown version") ($(command -v mbsync)) is measured too" >&2
	else
		echo "run.sh: mbsync is not installed, so it is not measured (Debian: apt-get install isync)" >&2
	fi

	bin=$(mktemp -d "${TMPDIR:-/tmp}/unimail-bench-bin.XXXXXX")
	trap 'rm -rf "$bin"' EXIT INT TERM
	echo "run.sh: building the benchmark, the launcher and examples/retrieve" >&2
	go build -o "$bin/unimail-bench" ./bench/cmd/unimail-bench
	go build -o "$bin/spawn" ./bench/cmd/spawn
	go build -o "$bin/retrieve" ./examples/retrieve

	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md' 2>/dev/null)" ]; then
		commit="$commit with uncommitted changes"
	fi

	set -- -runs "$runs" -profiles "$profiles" -incremental-sizes "$sizes" -incremental-runs "$incr_runs" \
		-launcher "$bin/spawn" -retrieve "$bin/retrieve" \
		-command "./bench/run.sh${args:+ $args}" -commit "$commit"
	[ "$out" = "-" ] || set -- "$@" -o "$out"
	[ -z "$json" ] || set -- "$@" -json "$json"
	[ -z "$client_timeout" ] || set -- "$@" -client-timeout "$client_timeout"
	[ -z "$retrieve_batches" ] || set -- "$@" -retrieve-batches "$retrieve_batches"
	[ -z "$cpuprofile" ] || set -- "$@" -cpuprofile "$cpuprofile"
	"$bin/unimail-bench" "$@"
	[ "$out" = "-" ] || echo "run.sh: results written to $out" >&2
fi

if [ "$long" = 1 ]; then
	run_long
fi
