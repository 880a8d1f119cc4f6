// Package fleet keeps many mailboxes fetched, from one process or from
// many: a help desk that polls every customer's support address, a bridge
// that reads each user's account, an archiver that sweeps a domain. The
// application registers accounts (Add); every worker process (Start)
// fetches the accounts that are due with mailaccess.Fetcher, which keeps
// the safety contract of package mailaccess. The fleet only schedules: the
// policy (retention, state, group commit) stays in mailaccess.
//
// # The engine
//
// The fleet runs on River (github.com/riverqueue/river), a job queue in
// the application's database. Each account is one River job, unique by
// account, so no two workers run one account at once; at the end of a
// run the job snoozes until the account's next run. A worker that dies
// (killed, crashed, partitioned) has its accounts taken by another once
// Options.RescueAfter has passed (River's rescuer).
//
// The embedded default is an SQLite file (OpenSQLite; modernc.org/sqlite,
// pure Go: nothing to install), for one process or a few on one machine.
// To scale out, the same code runs on PostgreSQL (OpenPostgres, through
// github.com/jackc/pgx/v5), with as many worker processes on as many
// machines as the mail servers allow. River's tables, the fleet's
// (<prefix>fleet_accounts) and the delivery state's (package
// mailaccess/sqlstate) live in the same database; all are created or
// migrated when the fleet opens.
//
// # Credentials
//
// The database never holds a credential: an account's URL must not carry
// a password. Every worker process sets Options.Credentials, a callback
// that returns the account's mailaccess.Auth (a password, or a Token
// function for OAuth 2.0) from wherever the application keeps its secrets,
// before each session. Errors and the accounts' recorded errors never show
// a credential.
//
// # Fencing
//
// River gives a job to one worker at a time, but a worker that was paused
// or cut off while its job was rescued may wake up still holding a
// session. So each account has a fencing token in its row, raised when a
// job of the account starts. The run's State (sqlstate.State.Fenced)
// checks the token inside the transaction that records each delivery, and
// the Fetcher checks it (mailaccess.Fetcher.Fence) before any deletion or
// move and before the session commits. A worker whose token has moved on
// records nothing more, deletes nothing, aborts its session and ends its
// run with ErrFenced. The messages its handler took since its last
// recorded group are delivered again by the new owner: duplicates, never a
// loss. River still lets the stale worker snooze the job when its run
// ends, which may schedule the account once more, early: the next run
// then raises the token again, and the fence keeps every run safe.
//
// # Schedules and politeness
//
// A polled account runs every Account.Every, give or take a tenth, and
// its first run falls at a random instant within one period of Add, so
// that thousands of accounts do not connect in the same second. RunNow
// makes an account due at once (a user pressed "check mail", a webhook
// announced new mail): it runs as soon as a worker is free, and a run
// under way is not interrupted. A pushed account (Account.Push) holds its
// connection for Options.PushPeriod inside one job, waiting for new mail
// with IMAP IDLE where the server can (and polling every Every where it
// cannot), then hands over: the next run may be on another worker, and a
// stopping worker hands its pushed accounts over at once.
//
// Errors are classified by their mailaccess kind. A failed authentication,
// TLS failure or unsupported retention stops the account (reported in
// Accounts; Add starts it again); every other error is retried after a
// jittered exponential backoff (Options.Backoff up to MaxBackoff). A POP3
// server's LOGIN-DELAY is honoured: no account logs in sooner. One
// process holds at most Options.HostLimit sessions with one server host;
// River has no bound across processes, so N processes hold at most
// N×HostLimit.
//
// # Observability
//
// Accounts reads every account's last success, last error (kind and
// message), next run and counters, as all processes recorded them; Stats
// returns this process's counters (runs, messages, octets, errors by
// kind, lag). The example program examples/fleet exports them for
// Prometheus.
package fleet
