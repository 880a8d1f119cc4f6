// Command fleet shows the fleet runner (package fleet) at work with
// nothing to install: a few hundred accounts on in-process POP3 and IMAP
// servers, kept fetched by River on an SQLite file in a temporary
// directory, while new mail keeps arriving. It prints a short live table
// (accounts, messages fetched, errors, lag) and, with -metrics, serves the
// counters for Prometheus at /metrics.
//
//	go run ./examples/fleet
//	go run ./examples/fleet -accounts 500 -metrics 127.0.0.1:9100
//
// With -db postgres://... the fleet lives in PostgreSQL, and the same
// binary runs as several processes that share the work: the first starts
// the demonstration servers and registers the accounts, the others (with
// -worker) only work, and take over the accounts of a process that
// stops or dies.
//
//	go run ./examples/fleet -db postgres://user:pass@localhost/fleet
//	go run ./examples/fleet -db postgres://user:pass@localhost/fleet -worker
//
// The demonstration servers listen on 127.0.0.1 without TLS, and every
// user's password is derived from its name: a real program takes its
// credentials from its secret store in Options.Credentials.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "fleet: %v\n", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	db       string
	worker   bool
	accounts int
	every    time.Duration
	duration time.Duration
	metrics  string
	table    time.Duration
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.db, "db", "", "the fleet's database: an SQLite file, or a postgres:// URL (default: an SQLite file in a temporary directory)")
	fs.BoolVar(&c.worker, "worker", false, "only work the accounts that another process registered (needs -db)")
	fs.IntVar(&c.accounts, "accounts", 300, "number of demonstration accounts, half POP3, half IMAP")
	fs.DurationVar(&c.every, "every", 5*time.Second, "how often each account is polled")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (default: at Ctrl-C)")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, such as 127.0.0.1:9100")
	fs.DurationVar(&c.table, "table", time.Second, "how often to print the live table")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.worker && c.db == "":
		return c, errors.New("-worker needs -db, the database that the registering process uses")
	case c.accounts < 0 || c.accounts > 100000:
		return c, errors.New("-accounts must be between 0 and 100000")
	case c.every < 100*time.Millisecond:
		return c, errors.New("-every must be at least 100ms")
	case c.table <= 0:
		return c, errors.New("-table must be positive")
	}
	return c, nil
}

// password is a demonstration user's password; only this demonstration
// derives passwords like this.
func password(user string) string { return "demo-" + user }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	var counted countHandler
	opts := &fleet.Options{
		Credentials: func(_ context.Context, a fleet.Account) (mailaccess.Auth, error) {
			t, err := unimail.ParseURL(a.URL)
			if err != nil {
				return mailaccess.Auth{}, err
			}
			return mailaccess.Auth{Username: t.User, Password: password(t.User)}, nil
		},
		Handlers: map[string]mailaccess.Handler{"count": counted.handle},
		Dial:     &unimail.Options{InsecureCleartext: true},
		Workers:  50,
		Backoff:  time.Second, MaxBackoff: 30 * time.Second,
		PushPeriod: time.Minute, JobTimeout: time.Minute,
		PollInterval: 200 * time.Millisecond,
	}
	f, where, cleanup, err := open(ctx, c.db, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	defer f.Close()
	fmt.Fprintf(stdout, "fleet in %s\n", where)
	if !c.worker {
		demo, err := startServers(c.accounts)
		if err != nil {
			return err
		}
		defer demo.close()
		if err := demo.register(ctx, f, c.every); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d accounts on POP3 %s and IMAP %s\n", c.accounts, demo.pop.Addr, demo.imapAddr)
		go demo.deliver(ctx)
	}
	if c.metrics != "" {
		ln, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: metricsHandler(f), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stdout, "metrics at http://%s/metrics\n", ln.Addr())
	}
	if err := f.Start(ctx); err != nil {
		return err
	}
	table(ctx, f, stdout, c.table)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Stop(sctx); err != nil {
		return err
	}
	printRow(context.Background(), f, stdout)
	if st := f.Stats(); len(st.Errors) > 0 {
		fmt.Fprintf(stdout, "errors by kind: %v\n", st.Errors)

	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

// open opens the fleet in db: PostgreSQL for a postgres:// URL, else an
// SQLite file (in a temporary directory when db is empty, which cleanup
// removes). It returns where, for the first line of output, without a
// password.
func open(ctx context.Context, db string, opts *fleet.Options) (*fleet.Fleet, string, func(), error) {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		f, err := fleet.OpenPostgres(ctx, db, opts)
		return f, "PostgreSQL", func() {}, err
	}
	cleanup := func() {}
	if db == "" {
		dir, err := os.MkdirTemp("", "unimail-fleet-")
		if err != nil {
			return nil, "", nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		db = filepath.Join(dir, "fleet.db")
	}
	f, err := fleet.OpenSQLite(ctx, db, opts)
	if err != nil {
		cleanup()
	}
	return f, db, cleanup, err
}

// table prints the live table every period until ctx ends.
func table(ctx context.Context, f *fleet.Fleet, w io.Writer, period time.Duration) {
	fmt.Fprintf(w, "%-8s %8s %8s %10s %7s %8s %8s\n", "time", "accounts", "running", "fetched", "errors", "lag", "stopped")
	fmt.Fprintln(w, "(accounts and stopped: every process; running, fetched, errors and lag: this process)")
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			printRow(ctx, f, w)
		}
	}
}

// printRow prints one line of the table: the accounts as the database
// has them (every process), and this process's counters.
func printRow(ctx context.Context, f *fleet.Fleet, w io.Writer) {
	as, err := f.Accounts(ctx)
	if err != nil {
		fmt.Fprintf(w, "accounts: %v\n", err)
		return
	}
	stopped := 0
	for _, a := range as {
		if a.Stopped {
			stopped++
		}
	}
	st := f.Stats()
	var errs int64
	for _, n := range st.Errors {
		errs += n
	}
	fmt.Fprintf(w, "%-8s %8d %8d %10d %7d %8s %8d\n", time.Now().Format("15:04:05"), len(as), st.Running, st.Fetched, errs, st.Lag.Round(time.Millisecond), stopped)
}

// countHandler takes every message and only counts it.
type countHandler struct{}

func (countHandler) handle(_ context.Context, m *mailaccess.Message) error {
	_, err := io.Copy(io.Discard, m.Body)
	return err
}
