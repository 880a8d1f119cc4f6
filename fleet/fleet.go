package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

// Options tunes a Fleet. A nil *Options means the defaults, but a Fleet
// that works accounts (Start) needs Credentials and Handlers.
type Options struct {
	// TablePrefix begins the names of the fleet's table
	// (<prefix>fleet_accounts, <prefix>fleet_version) and of the
	// delivery state's tables (see sqlstate.Options). Empty means
	// "unimail_". River's own tables keep River's names (river_job, ...).
	TablePrefix string
	// Credentials returns the credentials of an account for one session:
	// a password, or a Token function for OAuth 2.0 (see
	// mailaccess.Auth). The fleet never stores credentials: every process
	// that works accounts sets this callback, which reads them from where
	// the application keeps its secrets. It is called before every
	// session. Its error is recorded as the account's last error and
	// logged, so it must not hold a secret; an error that matches
	// mailaccess.ErrAuth stops the account, any other is retried with
	// backoff.
	Credentials func(ctx context.Context, a Account) (mailaccess.Auth, error)
	// Handlers are the handlers that accounts name (Account.Handler).
	// Any process may run any account, so every process that works
	// accounts registers the same names.
	Handlers map[string]mailaccess.Handler
	// Dial is the connection settings that every session starts from
	// (TLS configuration, timeouts, cleartext for local servers); its
	// Auth is replaced by what Credentials returns. nil means defaults.
	Dial *unimail.Options
	// Batch and MaxSize are the Fetcher's (see mailaccess.Fetcher).
	Batch   mailaccess.Batch
	MaxSize int64
	// Workers is how many accounts this process works at once; zero
	// means 100.
	Workers int
	// HostLimit bounds, per server host, the sessions this process holds
	// at once: a polled account's whole session, and a pushed account's
	// connection set-up and login (its waiting IDLE connection is not
	// counted). Zero means 8. The bound is per process: N processes
	// open at most N×HostLimit sessions to one host.
	HostLimit int
	// JobTimeout bounds one polled session; zero means 10 minutes.
	JobTimeout time.Duration
	// PushPeriod is how long a pushed account holds its connection in
	// one job before it hands over to the next (possibly on another
	// process); zero means 10 minutes. A stopping process hands its
	// pushed accounts over at once.
	PushPeriod time.Duration
	// RescueAfter is how long after a job started a worker that stopped
	// answering (killed, partitioned) loses it to another process. It
	// must exceed JobTimeout and PushPeriod; zero means
	// PushPeriod+JobTimeout plus one minute. River's rescuer looks for
	// such jobs every 30 seconds.
	RescueAfter time.Duration
	// Backoff is the first wait after an error of an account; it doubles
	// with each further error up to MaxBackoff. Zero means 30 seconds
	// and one hour.
	Backoff, MaxBackoff time.Duration
	// PollInterval is how often River looks for due jobs besides its
	// notifications; zero means one second.
	PollInterval time.Duration
	// CheckEvery is how often this process looks for accounts that have
	// no job scheduled (a job River discarded) and schedules them again;
	// zero means five minutes.
	CheckEvery time.Duration
	// ID names this process among the fleet's workers (River's client
	// ID); empty means a generated one.
	ID string
	// Logger receives the fleet's events; nil means none. No event holds
	// a credential.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	defaultWorkers    = 100
	defaultHostLimit  = 8
	defaultJobTimeout = 10 * time.Minute
	defaultPush       = 10 * time.Minute
	defaultBackoff    = 30 * time.Second
	defaultMaxBackoff = time.Hour
	defaultPoll       = time.Second
	defaultCheck      = 5 * time.Minute
	defaultPrefix     = "unimail_"
	queueName         = "unimail_fleet"
)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	r.Workers = cmpOr(r.Workers, defaultWorkers)
	r.HostLimit = cmpOr(r.HostLimit, defaultHostLimit)
	r.JobTimeout = cmpOr(r.JobTimeout, defaultJobTimeout)
	r.PushPeriod = cmpOr(r.PushPeriod, defaultPush)
	r.RescueAfter = cmpOr(r.RescueAfter, r.PushPeriod+r.JobTimeout+time.Minute)
	r.Backoff = cmpOr(r.Backoff, defaultBackoff)
	r.MaxBackoff = cmpOr(r.MaxBackoff, defaultMaxBackoff)
	r.PollInterval = cmpOr(r.PollInterval, defaultPoll)
	r.CheckEvery = cmpOr(r.CheckEvery, defaultCheck)
	r.TablePrefix = cmpOr(r.TablePrefix, defaultPrefix)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if !prefixRE.MatchString(r.TablePrefix) {
		return r, invalid("table prefix %q is not a lower-case SQL identifier of at most 40 characters", r.TablePrefix)
	}
	if r.RescueAfter <= r.jobLimit() {
		return r, invalid("RescueAfter (%s) must exceed PushPeriod+JobTimeout (%s)", r.RescueAfter, r.jobLimit())
	}
	if r.Workers < 0 || r.HostLimit < 0 || r.JobTimeout < 0 || r.PushPeriod < 0 || r.Backoff < 0 || r.MaxBackoff < r.Backoff {
		return r, invalid("negative option, or MaxBackoff below Backoff")
	}
	return r, nil
}

// jobLimit is River's timeout of one job: the longest a job runs.
func (o *Options) jobLimit() time.Duration { return o.PushPeriod + o.JobTimeout }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func invalid(format string, args ...any) error {
	return &mailaccess.Error{Op: "fleet", Kind: mailaccess.ErrInvalidArgument, Err: fmt.Errorf(format, args...)}
}

// engine is the River client, whatever its driver's transaction type.
type engine interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// Fleet keeps many accounts fetched: each account is one River job, unique
// by account, which one worker process at a time runs, then schedules
// again. Open it with OpenSQLite or OpenPostgres; register accounts with
// Add; Start makes this process one of the workers. A Fleet is safe for
// concurrent use.
type Fleet struct {
	opts    Options
	d       dialect
	db      *sql.DB // the fleet's table and the delivery state
	riverDB *sql.DB // SQLite: River's own connection
	pool    *pgxpool.Pool
	state   *sqlstate.State
	river   engine
	q       queries
	hosts   *hostLimiter
	stats   stats
	secrets []string

	mu       sync.Mutex
	started  bool
	stopped  bool
	stopCtx  context.Context // ended by Stop: pushed accounts hand over
	stopAll  context.CancelFunc
	loopDone chan struct{}
}

// Start makes this process a worker: it runs the accounts that are due,
// as many at once as Options.Workers, until Stop. It returns once the
// workers have started. A Fleet starts once.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.stopped {
		return &mailaccess.Error{Op: "fleet start", Kind: mailaccess.ErrInvalidArgument, Err: errors.New("a Fleet starts once")}
	}
	if f.opts.Credentials == nil || len(f.opts.Handlers) == 0 {
		return invalid("a working Fleet needs Options.Credentials and Options.Handlers")
	}
	if err := f.river.Start(context.WithoutCancel(ctx)); err != nil {
		return f.fail("start", err)
	}
	f.started = true
	go f.checkLoop()
	return nil
}

// Stop stops this process's work gracefully: pushed accounts hand over at
// once, polled sessions that are under way finish (they commit or abort
// as the Fetcher does); when ctx ends first, they are cancelled (the
// Fetcher then aborts: nothing is deleted that was not recorded, and
// their accounts are due again at once, for another process). Stop
// returns when the work has stopped, and is harmless when the Fleet was
// not started or is already stopped.
func (f *Fleet) Stop(ctx context.Context) error {
	f.mu.Lock()
	if !f.started || f.stopped {
		f.stopped = true
		f.stopAll()
		f.mu.Unlock()
		return nil
	}
	f.stopped = true
	f.stopAll()
	f.mu.Unlock()
	<-f.loopDone
	err := f.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		c, cancel := context.WithTimeout(context.Background(), f.opts.JobTimeout)
		defer cancel()
		err = f.river.StopAndCancel(c)
	}
	return f.fail("stop", err)
}

// Close stops the work as Stop does (cancelling what is under way after
// one minute) and closes the database. The Fleet is then unusable.
func (f *Fleet) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := f.Stop(ctx)
	err = errors.Join(err, f.state.Close(), f.db.Close())
	if f.riverDB != nil {
		err = errors.Join(err, f.riverDB.Close())
	}
	if f.pool != nil {
		f.pool.Close()
	}
	return f.fail("close", err)
}

// fail turns err into a fleet error without a secret of the DSN.
func (f *Fleet) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	return failWith(op, err, f.secrets)
}

// checkLoop schedules again the accounts that have no job, every
// CheckEvery, until Stop.
func (f *Fleet) checkLoop() {
	defer close(f.loopDone)
	t := time.NewTicker(f.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-f.stopCtx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), f.opts.CheckEvery)
			if err := f.reschedule(ctx); err != nil {
				f.opts.Logger.Warn("fleet: looking for accounts without a job failed", "err", err)
			}
			cancel()
		}
	}
}
