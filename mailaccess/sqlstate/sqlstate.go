package sqlstate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/unimail/unimail/internal/dbsecret"
	"github.com/unimail/unimail/mailaccess"
)

// State is a mailaccess.State (and mailaccess.IncrementalState) kept in
// an SQL database, SQLite or PostgreSQL. It is safe for concurrent use by
// the Fetchers of different mailboxes, and, on PostgreSQL, by several
// processes. Every error it returns matches mailaccess.ErrState.
type State struct {
	db     *sql.DB
	owned  bool // db was opened by OpenSQLite or OpenPostgres, and Close closes it
	d      dialect
	prefix string
	q      queries
	// writer is held by a write on SQLite, so that the writes of this
	// State queue here instead of polling SQLite's busy handler.
	writer  chan struct{}
	secrets []string // passwords of the DSN, never to be shown in an error
	closed  atomic.Bool
	// fence, in a view made by Fenced, runs first in every write
	// transaction; parent is the State it was made from.
	fence  func(ctx context.Context, tx *sql.Tx) error
	parent *State
}

var _ mailaccess.IncrementalState = (*State)(nil)

// Options tunes Open, OpenSQLite and OpenPostgres. A nil *Options means
// the defaults.
type Options struct {
	// TablePrefix begins the names of the package's tables
	// (<prefix>records, <prefix>marks, <prefix>counts and
	// <prefix>schema_version) and of its triggers. Empty means
	// "unimail_". States with different prefixes in one database are
	// independent. It must be a lower-case SQL identifier: a letter or
	// underscore, then letters, digits or underscores, at most 40.
	TablePrefix string
}

// defaultPrefix is the table prefix when Options.TablePrefix is empty.
const defaultPrefix = "unimail_"

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// opTimeout bounds every call whose context has no deadline, so that a
// database that stops answering fails a run instead of hanging it (the
// Fetcher calls Put with a context that is never cancelled).
const opTimeout = time.Minute

// sqliteParams are the settings of every connection that OpenSQLite
// makes: a committed transaction is durable (WAL, synchronous=FULL); a
// connection waits up to 10 s for another's write lock (busy_timeout)
// instead of failing with SQLITE_BUSY; and transactions take the write
// lock when they begin, so that two of them never deadlock upgrading.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"

// sqliteConns is the size of the connection pool of OpenSQLite: reads go
// in parallel, writes take turns.
const sqliteConns = 8

// postgresConns is the size of the connection pool of OpenPostgres.
const postgresConns = 10

// postgresConnectTimeout is OpenPostgres's connect_timeout when the DSN
// sets none.
const postgresConnectTimeout = 10 * time.Second

// Open opens the State in db, a database that the application owns and
// keeps open while the State is used (Close does not close it). db's
// driver tells the dialect: modernc.org/sqlite (driver name "sqlite") or
// github.com/jackc/pgx/v5/stdlib ("pgx"); another driver is refused.
//
// Open creates the tables when they are missing and migrates them when
// they are older than this package; a schema newer than this package is
// refused. It reads no record: its cost does not depend on how many
// there are.
//
// On SQLite, give db a DSN with a busy timeout (_pragma=busy_timeout(N)),
// so that connections of one process wait for each other's write lock,
// and keep SQLite's default synchronous=FULL (or set it with WAL), so
// that a committed Put is durable. OpenSQLite does both.
func Open(ctx context.Context, db *sql.DB, opts *Options) (*State, error) {
	var d dialect
	switch db.Driver().(type) {
	case *sqlite.Driver:
		d = sqliteDB
	case *stdlib.Driver:
		d = postgres
	default:
		return nil, stateError("open", fmt.Errorf("%w: unsupported database driver %T: sqlstate works with modernc.org/sqlite and github.com/jackc/pgx/v5/stdlib", mailaccess.ErrInvalidArgument, db.Driver()))
	}
	return open(ctx, db, d, opts, false, nil)
}

// OpenSQLite opens (or creates) the SQLite database file at path through
// modernc.org/sqlite (pure Go: nothing to install) and the State in it,
// as Open does. The file is created with mode 0600. Its connections
// write ahead (WAL) with synchronous=FULL, so that a Put that returned
// is durable, and wait up to 10 s for each other's locks; other processes
// may open the same file. Close closes the database.
func OpenSQLite(ctx context.Context, path string, opts *Options) (*State, error) {
	if path == "" {
		return nil, stateError("open", fmt.Errorf("%w: empty SQLite path", mailaccess.ErrInvalidArgument))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, stateError("open", err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, stateError("open", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: abs}).EscapedPath()+"?"+sqliteParams)
	if err != nil {
		return nil, stateError("open", err)
	}
	db.SetMaxOpenConns(sqliteConns)
	db.SetMaxIdleConns(sqliteConns)
	s, err := open(ctx, db, sqliteDB, opts, true, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to the PostgreSQL database that dsn names (a URL,
// postgres://user:password@host:port/database?..., or key=value pairs,
// as pgx takes them) and opens the State in it, as Open does, with a
// pool of at most 10 connections. When dsn sets no connect_timeout, a
// connection attempt gives up after 10 s. No error of the State ever
// shows the password. Close closes the pool.
func OpenPostgres(ctx context.Context, dsn string, opts *Options) (*State, error) {
	secrets := dbsecret.Passwords(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, stateError("open", fmt.Errorf("%w: %w", mailaccess.ErrInvalidArgument, dbsecret.Scrub(err, secrets)))
	}
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = postgresConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns)
	s, err := open(ctx, db, postgres, opts, true, secrets)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, db *sql.DB, d dialect, opts *Options, owned bool, secrets []string) (*State, error) {
	prefix := defaultPrefix
	if opts != nil && opts.TablePrefix != "" {
		prefix = opts.TablePrefix
	}
	if !prefixRE.MatchString(prefix) {
		return nil, stateError("open", fmt.Errorf("%w: table prefix %q is not a lower-case SQL identifier of at most 40 characters", mailaccess.ErrInvalidArgument, prefix))
	}
	s := &State{db: db, owned: owned, d: d, prefix: prefix, secrets: secrets, writer: make(chan struct{}, 1)}
	s.q = newQueries(d, prefix)
	parent := ctx
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := s.checkSchema(ctx); err != nil {
		return nil, s.fail(parent, "open", err)
	}
	return s, nil
}

// Close closes the database when OpenSQLite or OpenPostgres opened it;
// the State is then unusable. A State of Open leaves the application's
// database open. Closing twice is harmless.
func (s *State) Close() error {
	if s.parent != nil {
		return nil
	}
	if s.closed.Swap(true) || !s.owned {
		return nil
	}
	return s.fail(context.Background(), "close", s.db.Close())
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}

var errClosed = errors.New("state is closed")

// stateError is an error of op that matches mailaccess.ErrState.
func stateError(op string, err error) error {
	return &mailaccess.Error{Op: "sqlstate " + op, Kind: mailaccess.ErrState, Err: err}
}

// fail turns an error of the database into the State's error: it matches
// mailaccess.ErrState, also mailaccess.ErrUnavailable when the database
// could not be reached, was busy or did not answer in time (so that
// mailaccess.IsTemporary says that retrying can help), and never shows a
// password of the DSN. ctx is the caller's context: when it has ended,
// the error is its end, never temporary.
func (s *State) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, mailaccess.ErrState) {
		return err
	}
	err = dbsecret.Scrub(err, s.secrets)
	if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		// The package's own limit ended the call (OpenPostgres's connect
		// timeout, or the minute of opTimeout), not the caller: the
		// database did not answer in time.
		err = fmt.Errorf("%w: the database did not answer in time (%s)", mailaccess.ErrUnavailable, err.Error())
	} else if ctx.Err() == nil && dbsecret.Unavailable(err) {
		err = fmt.Errorf("%w: %w", mailaccess.ErrUnavailable, err)
	}
	return stateError(op, err)
}
