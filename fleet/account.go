package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/mailaccess"
)

// Account is one mailbox that the fleet keeps fetched.
type Account struct {
	// ID is the account's stable key, chosen by the application: 1 to
	// 200 bytes of UTF-8 without control characters.
	ID string
	// URL names the mailbox as unimail.Dial takes it
	// ("imaps://alice@mail.example.com/INBOX", "pop3s://bob@pop.example.com"),
	// without a password: credentials come from Options.Credentials.
	URL string
	// Retention is what happens on the server to delivered messages; the
	// zero value is mailaccess.KeepOnServer.
	Retention mailaccess.Retention
	// Handler names the handler (a key of Options.Handlers) that takes the
	// account's messages.
	Handler string
	// Every is how often the account is polled, and the poll interval of
	// a pushed account whose server cannot push; zero means five minutes.
	Every time.Duration
	// Push keeps a connection open to be told of new mail at once (IMAP
	// IDLE) where the server can; elsewhere the account is polled.
	Push bool
}

// defaultEvery is Account.Every when zero; minEvery the shortest allowed.
const (
	defaultEvery = 5 * time.Minute
	minEvery     = 100 * time.Millisecond
	maxIDLen     = 200
)

// check validates a and fills in its defaults.
func (a Account) check() (Account, error) {
	bad := func(format string, args ...any) (Account, error) {
		return a, &mailaccess.Error{Op: "fleet account", Kind: mailaccess.ErrInvalidArgument, Err: fmt.Errorf(format, args...)}
	}
	if a.ID == "" || len(a.ID) > maxIDLen || !utf8.ValidString(a.ID) || strings.IndexFunc(a.ID, unicode.IsControl) >= 0 {
		return bad("the account ID must be 1 to %d bytes of UTF-8 without control characters", maxIDLen)
	}
	t, err := unimail.ParseURL(a.URL)
	if err != nil {
		return a, err // says which part is wrong, never repeats the URL
	}
	if t.Password != "" {
		return bad("account %q: the URL holds a password; the fleet takes credentials from Options.Credentials, never from its database", a.ID)
	}
	a.URL = t.String()
	if a.Retention == "" {
		a.Retention = mailaccess.KeepOnServer
	}
	r, err := mailaccess.ParseRetention(a.Retention.String())
	if err != nil {
		return bad("account %q: retention: %w", a.ID, err)
	}
	a.Retention = r
	if t.Protocol() == "pop3" && r.Folder() != "" {
		return a, &mailaccess.Error{Op: "fleet account", Kind: mailaccess.ErrUnsupported, Err: fmt.Errorf("account %q: POP3 cannot move messages (retention %s)", a.ID, r)}
	}
	if a.Handler == "" || strings.IndexFunc(a.Handler, unicode.IsControl) >= 0 || len(a.Handler) > maxIDLen {
		return bad("account %q: a handler name is required", a.ID)
	}
	switch {
	case a.Every == 0:
		a.Every = defaultEvery
	case a.Every < minEvery:
		return bad("account %q: Every is below %s", a.ID, minEvery)
	}
	return a, nil
}

// accountArgs are the arguments of an account's River job.
type accountArgs struct {
	Account string `json:"account"`
}

// Kind is the River job kind of the fleet's accounts.
func (accountArgs) Kind() string { return "unimail_fleet_account" }

// insertOpts make an account's job unique among the live ones.
func insertOpts(at time.Time) *river.InsertOpts {
	return &river.InsertOpts{
		Queue:       queueName,
		ScheduledAt: at,
		MaxAttempts: maxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateScheduled, rivertype.JobStateRetryable,
		}},
	}
}

// Add registers the account, or updates it when its ID is known (which
// also restarts an account that an authentication failure stopped), and
// schedules its first run within one Every from now, at a random instant,
// so that many accounts added at once do not connect at once. Add needs
// no Start: a process may register accounts that others work.
func (f *Fleet) Add(ctx context.Context, a Account) error {
	a, err := a.check()
	if err != nil {
		return err
	}
	first := time.Now().Add(rand.N(a.Every))
	if _, err := f.db.ExecContext(ctx, f.q.upsert, a.ID, a.URL, a.Retention.String(), a.Handler, int64(a.Every), boolInt(a.Push), first.UnixNano()); err != nil {
		return f.fail("add", err)
	}
	if _, err := f.river.Insert(ctx, accountArgs{Account: a.ID}, insertOpts(first)); err != nil {
		return f.fail("add", err)
	}
	return nil
}

// RunNow makes the account due now: a run of it starts after RunNow was
// called, as soon as a worker of the fleet (in any process) is free,
// whenever its next run was scheduled; then its schedule goes on from
// that run. A run under way is not interrupted and no second run starts
// beside it: when it ends, the account is due again at once, unless it
// started after RunNow. A pushed account whose connection waits for new
// mail already takes it as it comes. An account that an authentication
// failure stopped stays stopped (Add starts it again). An ID that is not
// registered gives an error that matches ErrUnknownAccount (and
// mailaccess.ErrInvalidArgument). RunNow needs no Start: a process may
// make due accounts that others work.
func (f *Fleet) RunNow(ctx context.Context, id string) error {
	var fence, seen int64
	err := f.db.QueryRowContext(ctx, f.q.runNow, id).Scan(&fence, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return &mailaccess.Error{Op: "fleet run now", Kind: mailaccess.ErrInvalidArgument, Err: fmt.Errorf("account %q: %w", id, ErrUnknownAccount)}
	}
	if err != nil {
		return f.fail("run now", err)
	}
	// The job is unique among the live ones: Insert returns the one there
	// is, or makes one that is available at once.
	res, err := f.river.Insert(ctx, accountArgs{Account: id}, insertOpts(time.Now()))
	if err != nil {
		return f.fail("run now", err)
	}
	job := res.Job
	for {
		switch job.State {
		case rivertype.JobStateScheduled, rivertype.JobStateRetryable:
			// A snoozed job is scheduled: make it available now. River
			// leaves alone a job that started meanwhile.
			_, err := f.river.JobRetry(ctx, job.ID)
			return f.fail("run now", err)
		case rivertype.JobStateRunning:
			// A run that has not yet looked at the requests (seen <
			// fence) will; so will one that starts after the request
			// (the fence moves on).
			var now int64
			if err := f.db.QueryRowContext(ctx, f.q.fence, id).Scan(&now); err != nil {
				return f.fail("run now", err)
			}
			if seen < fence || now > fence {
				return nil
			}
			// The run has ended but River has not yet scheduled its
			// next: wait a moment for it.
			select {
			case <-ctx.Done():
				return f.fail("run now", context.Cause(ctx))
			case <-time.After(20 * time.Millisecond):
			}
			if job, err = f.river.JobGet(ctx, job.ID); err != nil {
				return f.fail("run now", err)
			}
		default:
			// Available: it runs as soon as a worker is free. Ended
			// (the account stopped or removed): nothing to run.
			return nil
		}
	}
}

// Remove unregisters the account. A session of it that is under way
// cannot record or delete anything after that; its delivery records stay
// in the State.
func (f *Fleet) Remove(ctx context.Context, id string) error {
	_, err := f.db.ExecContext(ctx, f.q.remove, id)
	return f.fail("remove", err)
}

// AccountStatus is an account as the fleet sees it.
type AccountStatus struct {
	Account
	// Stopped is true when the account is not run any more, after an
	// error that retrying cannot cure (authentication, TLS); Add starts
	// it again.
	Stopped bool
	// Failures counts the errors since the last success; the backoff
	// grows with it.
	Failures int
	// LastStart, LastSuccess and LastError are when a run last started,
	// succeeded and failed (zero: never).
	LastStart, LastSuccess, LastError time.Time
	// LastErrorKind names the kind of the last error ("auth",
	// "connection", ...; see Stats.Errors) and LastErrorText is its
	// message. Neither holds a credential.
	LastErrorKind, LastErrorText string
	// NextRun is when the account is due next.
	NextRun time.Time
	// Runs, Fetched and Bytes count the account's runs and the messages
	// and octets delivered, by every process.
	Runs, Fetched, Bytes int64
}

// Accounts returns every registered account with its status, ordered by
// ID, from the database: what every process of the fleet did.
func (f *Fleet) Accounts(ctx context.Context) ([]AccountStatus, error) {
	rows, err := f.db.QueryContext(ctx, f.q.list)
	if err != nil {
		return nil, f.fail("accounts", err)
	}
	defer rows.Close()
	var out []AccountStatus
	for rows.Next() {
		var s AccountStatus
		var ret string
		var every, push, stopped, start, ok, bad, next int64
		if err := rows.Scan(&s.ID, &s.URL, &ret, &s.Handler, &every, &push, &stopped, &s.Failures, &start, &ok,
			&bad, &s.LastErrorKind, &s.LastErrorText, &next, &s.Runs, &s.Fetched, &s.Bytes); err != nil {
			return nil, f.fail("accounts", err)
		}
		s.Retention, s.Every, s.Push, s.Stopped = mailaccess.Retention(ret), time.Duration(every), push != 0, stopped != 0
		s.LastStart, s.LastSuccess, s.LastError, s.NextRun = nsTime(start), nsTime(ok), nsTime(bad), nsTime(next)
		out = append(out, s)
	}
	return out, f.fail("accounts", rows.Err())
}

// loaded is an account as a job reads it.
type loaded struct {
	Account
	stopped  bool
	failures int
}

// ErrUnknownAccount is matched by the error of RunNow for an account ID
// that is not registered.
var ErrUnknownAccount = errors.New("fleet: the account is not registered")

// errNoAccount is what load finds for an account that is not registered.
var errNoAccount = ErrUnknownAccount

func (f *Fleet) load(ctx context.Context, id string) (loaded, error) {
	l := loaded{Account: Account{ID: id}}
	var ret string
	var every, push, stopped int64
	err := f.db.QueryRowContext(ctx, f.q.load, id).Scan(&l.URL, &ret, &l.Handler, &every, &push, &stopped, &l.failures)
	if errors.Is(err, sql.ErrNoRows) {
		return l, errNoAccount
	}
	l.Retention, l.Every, l.Push, l.stopped = mailaccess.Retention(ret), time.Duration(every), push != 0, stopped != 0
	return l, err
}

// reschedule schedules a job for every account that is overdue and has
// not started for longer than a job can last: its job was discarded or
// lost. An account whose job exists is left alone (the job is unique).
func (f *Fleet) reschedule(ctx context.Context) error {
	now := time.Now()
	grace := f.opts.RescueAfter + f.opts.CheckEvery
	rows, err := f.db.QueryContext(ctx, f.q.overdue, now.Add(-grace).UnixNano(), now.Add(-f.opts.jobLimit()-grace).UnixNano())
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := f.river.Insert(ctx, accountArgs{Account: id}, insertOpts(now.Add(rand.N(time.Second)))); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
