// Package bench is the benchmark of unimail: how fast the library and
// examples/retrieve take mail from a real Dovecot 2.3, as a ratio to a raw
// limit (package bench/rawclient) measured on the same machine in the same
// run.
//
// The pieces:
//
//   - the workloads (Profile, ParseProfiles): small (2000 messages of about
//     3.9 KiB), mixed (500 messages from 1 KiB to 2 MiB), large (one 100
//     MiB message), and incremental (IMAP mailboxes of 1,000 to 100,000
//     messages with a file state: a first run, and a run with nothing new);
//     account, run only when named (20 folders of 500 small messages
//     fetched as a whole account on one connection with
//     Fetcher.FetchAccount, by retrieve with a folder pattern and by mbsync
//     with Patterns *, next to the same 10,000 messages in one folder);
//     fleet, run only when named (package fleet over FleetAccounts IMAPS
//     accounts of one Dovecot with one new message each, worked by
//     worker processes of their own, unimail-bench -fleet-worker
//     (RunFleetWorker): the time of a sweep that Fleet.RunNow starts on
//     every account and of a sweep with nothing new, on SQLite and on a
//     private PostgreSQL with 1 and 3 processes, and FleetPushAccounts
//     accounts held in IDLE: the worker's RSS per held account and the
//     delay from a delivery with doveadm save to the handler);
//     their messages are deterministic (Message, LargeMessage,
//     SmallMessages, MixedMessages);
//   - the measured clients: Raw (the baselines), Library (mailaccess.Fetcher
//     over imap.Dial or pop.Dial, discarding the bytes), the
//     examples/retrieve binary into a Maildir, and, when it is installed,
//     mbsync (isync, the fastest peer) pulling the INBOX into a Maildir
//     over IMAP (Runner.Mbsync, MbsyncPath);
//   - the Runner, which starts a private Dovecot per profile (StartDovecot:
//     the internal/dovecottest harness outside of a test), seeds it, and
//     measures every case in a process of its own, started by the tiny
//     launcher bench/cmd/spawn so that each peak RSS is the process's own;
//     every run is checked to have delivered every message and octet;
//   - WriteMarkdown, which renders BENCHMARKS.md.
//
// bench/cmd/unimail-bench is the program and bench/run.sh the one command
// that builds and runs it. The go test benchmarks BenchmarkFetchIMAP and
// BenchmarkFetchPOP3 measure the library on the small profile in-process
// and report msgs/s, x-raw, the process's CPU time per fetch (cpu-ms/op)
// and its ratio to the raw fetches' (x-raw-cpu);
// BenchmarkFetchIMAPState and BenchmarkFetchPOP3State do the same with a
// fresh MemoryState per fetch. Like the tests, they skip when Dovecot is
// missing unless UNIMAIL_REQUIRE_DOVECOT=1. PROFILE.md has their CPU and
// allocation profiles, allocations per message, and the commands.
package bench
