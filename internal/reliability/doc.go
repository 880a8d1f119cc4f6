// Package reliability holds the end-to-end reliability tests of unimail:
// the checks that the safety contract of package mailaccess (a message is
// deleted or moved on the server only after it was delivered and that
// delivery was recorded; a dropped connection, a crash or a kill loses
// nothing; duplicates stay within the documented window) holds when things
// go wrong. The package has no code of its own, only tests:
//
//   - faults at every step: against the in-process servers of pop/poptest
//     and imap/imaptest, for every retention, the connection is dropped
//     before and after every command and in the middle of every message
//     transfer, the commit commands are refused, and every command is
//     stalled past the driver's timeout; then a clean run with the same
//     State finishes the job;
//   - random faults against a real Dovecot: a proxy (internal/faultproxy)
//     cuts or stalls the conversation after a random number of bytes in a
//     random direction, on seeded schedules that can be replayed one by
//     one with UNIMAIL_FAULT_SEED;
//   - a killed process: examples/retrieve is built, run against Dovecot
//     and killed with SIGKILL at random moments, then run to completion;
//     the Maildir must hold every message, duplicates bounded by one
//     group (retrieve's -batch) per kill;
//   - a killed process at every step of a group commit: the test binary
//     fetches in groups into a Maildir and is killed after a handler,
//     before and after the sink's flush, before and after the State's
//     Put, and (by the server) at the first deletion and at the commit;
//     a clean run then finishes, and at most one group is delivered twice;
//   - the state under stress: a state file torn at random offsets, a full
//     disk, and two processes on one state file.
//
// After every scenario the same invariant is checked: every seeded message
// is either still on the server or was delivered (the handler took it and
// the State recorded it); the server holds what the retention says; and
// the number of messages delivered more than once is within the bound of
// the safety contract: one group per interrupted run (none at all without
// a crash or a failed write).
//
// # Running
//
// The normal suite (go test -race ./internal/reliability/) takes about a
// minute. The environment tunes it:
//
//   - UNIMAIL_LONG=1 runs the large variants: 5000 random schedules per
//     protocol from a base seed taken from the clock, 200 kills per
//     protocol and retention, 100 rounds of torn state files;
//   - UNIMAIL_FAULT_SEED=n replays the random schedule n alone, with a log
//     of every cut (a failing schedule prints this command);
//     UNIMAIL_FAULT_SCHEDULES=n sets the number of schedules;
//   - UNIMAIL_KILL_SEED=n fixes the seed of the kill delays and of the
//     state cuts (logged by every run);
//   - UNIMAIL_REQUIRE_DOVECOT=1 fails, rather than skips, the tests that
//     need Dovecot when it is not installed.
//
// The full-disk test mounts a 64 KiB tmpfs and so needs root (or
// CAP_SYS_ADMIN); it skips, saying why, where it cannot mount. The same
// failure is also simulated with a State whose writes fail, which needs
// nothing.
package reliability
