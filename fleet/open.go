package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/unimail/unimail/internal/dbsecret"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqliteParams are those of sqlstate.OpenSQLite: durable commits (WAL,
// synchronous=FULL), a wait for another connection's lock, and
// transactions that take the write lock when they begin.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"

// openTimeout bounds opening when ctx has no deadline.
const openTimeout = 30 * time.Second

// OpenSQLite opens (or creates) the fleet in the SQLite file at path (pure
// Go: nothing to install): River's tables, the fleet's and the delivery
// state's, migrated when they are missing or older. Several processes may
// open the same file; SQLite then serialises their writes, which suits a
// few processes on one machine. Close closes the file.
func OpenSQLite(ctx context.Context, path string, opts *Options) (*Fleet, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, invalid("empty SQLite path")
	}
	ctx, cancel := boundOpen(ctx)
	defer cancel()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, failWith("open", err, nil)
	}
	fh, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, failWith("open", err, nil)
	}
	fh.Close()
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + sqliteParams
	f := &Fleet{opts: o, d: sqliteDB}
	if f.db, err = sql.Open("sqlite", dsn); err != nil {
		return nil, failWith("open", err, nil)
	}
	f.db.SetMaxOpenConns(8)
	// River runs its statements on one connection, as riversqlite asks.
	if f.riverDB, err = sql.Open("sqlite", dsn); err != nil {
		f.db.Close()
		return nil, failWith("open", err, nil)
	}
	f.riverDB.SetMaxOpenConns(1)
	drv := riversqlite.New(f.riverDB)
	err = migrateSQLiteRiver(ctx, drv)
	if err == nil {
		err = f.finish(ctx, drv)
	}
	if err != nil {
		f.db.Close()
		f.riverDB.Close()
		return nil, failWith("open", err, nil)
	}
	return f, nil
}

// OpenPostgres opens the fleet in the PostgreSQL database that dsn names
// (a URL or key=value pairs, as pgx takes them), creating or migrating
// River's tables, the fleet's and the delivery state's. Any number of
// processes on any number of machines may open the same database and
// share the work. No error shows the DSN's password. Close closes the
// connection pool.
func OpenPostgres(ctx context.Context, dsn string, opts *Options) (*Fleet, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, &mailaccess.Error{Op: "fleet open", Kind: mailaccess.ErrInvalidArgument, Err: errors.New("the PostgreSQL DSN does not parse")}
	}
	secrets := dbsecret.Passwords(dsn)
	if pw := cfg.ConnConfig.Password; pw != "" {
		secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.MaxConns = max(cfg.MaxConns, int32(min(o.Workers, 50))+10)
	ctx, cancel := boundOpen(ctx)
	defer cancel()
	f := &Fleet{opts: o, d: postgres, secrets: secrets}
	if f.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, failWith("open", err, secrets)
	}
	f.db = stdlib.OpenDBFromPool(f.pool)
	drv := riverpgxv5.New(f.pool)
	err = migratePostgresRiver(ctx, f.pool, drv)
	if err == nil {
		err = f.finish(ctx, drv)
	}
	if err != nil {
		f.db.Close()
		f.pool.Close()
		return nil, failWith("open", err, secrets)
	}
	return f, nil
}

func boundOpen(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, openTimeout)
}

// migratePostgresRiver brings River's tables up to date, one migration
// per transaction (some of River's cannot share one), under a session
// lock that makes other processes opening the database wait.
func migratePostgresRiver(ctx context.Context, pool *pgxpool.Pool, drv *riverpgxv5.Driver) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	const key = "SELECT %s(hashtextextended('unimail fleet river migration', 0))"
	if _, err := conn.Exec(ctx, fmt.Sprintf(key, "pg_advisory_lock")); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), fmt.Sprintf(key, "pg_advisory_unlock"))
	m, err := rivermigrate.New(drv, nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating River's tables: %w", err)
	}
	return nil
}

// migrateSQLiteRiver brings River's tables up to date. Processes that
// open the same file at once may race to apply a migration; the loser
// finds it applied when it tries again.
func migrateSQLiteRiver(ctx context.Context, drv *riversqlite.Driver) error {
	m, err := rivermigrate.New(drv, nil)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		_, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err == nil {
			return nil
		}
		if try == 4 || ctx.Err() != nil {
			return fmt.Errorf("migrating River's tables: %w", err)
		}
		time.Sleep(jitter(time.Duration(try+1) * 200 * time.Millisecond))
	}
}

// finish creates the fleet's table, the delivery state and the River
// client.
func (f *Fleet) finish(ctx context.Context, drv any) error {
	if err := migrateFleet(ctx, f.db, f.d, f.opts.TablePrefix); err != nil {
		return err
	}
	st, err := sqlstate.Open(ctx, f.db, &sqlstate.Options{TablePrefix: f.opts.TablePrefix})
	if err != nil {
		return err
	}
	f.state = st
	f.q = newQueries(f.d, f.opts.TablePrefix)
	f.hosts = newHostLimiter(f.opts.HostLimit)
	f.stats.init()
	f.stopCtx, f.stopAll = context.WithCancel(context.Background())
	f.loopDone = make(chan struct{})
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{f: f}); err != nil {
		return err
	}
	cfg := &river.Config{
		ID:                   f.opts.ID,
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: f.opts.Workers}},
		Workers:              workers,
		JobTimeout:           f.opts.jobLimit(),
		RescueStuckJobsAfter: f.opts.RescueAfter,
		FetchPollInterval:    f.opts.PollInterval,
		FetchCooldown:        min(f.opts.PollInterval, river.FetchCooldownDefault),
		MaxAttempts:          maxAttempts,
		RetryPolicy:          retryPolicy{f.opts.Backoff},
		Logger:               f.opts.Logger,
	}
	switch d := drv.(type) {
	case *riversqlite.Driver:
		c, err := river.NewClient(d, cfg)
		if err != nil {
			return err
		}
		f.river = c
	case *riverpgxv5.Driver:
		c, err := river.NewClient(d, cfg)
		if err != nil {
			return err
		}
		f.river = c
	}
	return nil
}

// maxAttempts is River's bound on a job's failed attempts. An account's
// job snoozes rather than fails; it fails only when its worker died
// (River's rescuer), and the fleet schedules a discarded job again.
const maxAttempts = 1000

// retryPolicy makes a job whose worker died (rescued by River) due again
// after a short jittered wait, whatever its number of attempts.
type retryPolicy struct{ wait time.Duration }

func (p retryPolicy) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(jitter(p.wait))
}

// failWith makes err a fleet error of its kind: ErrNewerSchema and
// database failures match mailaccess.ErrState (and ErrUnavailable when the
// database could not be reached); errors that already have a kind keep
// it. No secret of the DSN is shown.
func failWith(op string, err error, secrets []string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*mailaccess.Error](err); ok {
		return dbsecret.Scrub(err, secrets)
	}
	err = dbsecret.Scrub(err, secrets)
	if dbsecret.Unavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", mailaccess.ErrUnavailable, err)
	}
	return &mailaccess.Error{Op: "fleet " + op, Kind: mailaccess.ErrState, Err: err}
}
