package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

// FleetWorker is the configuration of one worker process of the fleet
// profile (unimail-bench -fleet-worker reads it as JSON on stdin).
type FleetWorker struct {
	// ID names the process among the fleet's workers.
	ID string `json:"id"`
	// DB is "sqlite" or "postgres"; DSN is the SQLite path or the
	// PostgreSQL DSN.
	DB  string `json:"db"`
	DSN string `json:"dsn"`
	// CAFile is the PEM file of the server's certificate, the only one
	// trusted (IMAPS, verified).
	CAFile string `json:"ca_file"`
	// Workers and HostLimit are the fleet's Options.
	Workers   int `json:"workers"`
	HostLimit int `json:"host_limit"`
	// PushPeriod is Options.PushPeriod (0: the default).
	PushPeriod time.Duration `json:"push_period_ns,omitempty"`
	// CPUProfile, when set, is where the worker writes a CPU profile of
	// its whole run.
	CPUProfile string `json:"cpu_profile,omitempty"`
	// Report makes the handler print "got <account> <unix ns>" for each
	// message it takes, the time it took it.
	Report bool `json:"report,omitempty"`
}

// fleetHandler is the name of the worker's one handler.
const fleetHandler = "discard"

// RunFleetWorker opens the fleet that w names and works its accounts, with
// every account's password being password, until ctx ends; then it stops
// gracefully and closes the fleet. It writes to out the line
// "ready <pid>" once it works, a line "got <account> <unix ns>" for each
// message taken when w.Report is set, and, at the end, a line "stats
// runs=N fetched=N errors=N". Its handler reads each message to the end
// and discards it.
func RunFleetWorker(ctx context.Context, w FleetWorker, password string, out io.Writer) error {
	raiseNoFile()
	if w.CPUProfile != "" {
		pf, err := os.Create(w.CPUProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	t := Target{CAFile: w.CAFile}
	tc, err := t.TLSConfig()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	bw := bufio.NewWriter(out)
	line := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(bw, format+"\n", args...)
		bw.Flush()
	}
	handler := func(ctx context.Context, m *mailaccess.Message) error {
		if _, err := io.Copy(io.Discard, m.Body); err != nil {
			return err
		}
		if w.Report {
			id, _ := fleet.AccountID(ctx)
			line("got %s %d", id, time.Now().UnixNano())
		}
		return nil
	}
	opts := &fleet.Options{
		ID: w.ID,
		Credentials: func(_ context.Context, a fleet.Account) (mailaccess.Auth, error) {
			u, err := unimail.ParseURL(a.URL)
			if err != nil {
				return mailaccess.Auth{}, err
			}
			return mailaccess.Auth{Username: u.User, Password: password}, nil
		},
		Handlers:   map[string]mailaccess.Handler{fleetHandler: handler},
		Dial:       &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: tc}},
		Workers:    w.Workers,
		HostLimit:  w.HostLimit,
		PushPeriod: w.PushPeriod,
	}
	var f *fleet.Fleet
	switch w.DB {
	case "sqlite":
		f, err = fleet.OpenSQLite(ctx, w.DSN, opts)
	case "postgres":
		f, err = fleet.OpenPostgres(ctx, w.DSN, opts)
	default:
		return fmt.Errorf("unknown fleet database %q", w.DB)
	}
	if err != nil {
		return err
	}
	if err := f.Start(ctx); err != nil {
		f.Close()
		return err
	}
	line("ready %d", os.Getpid())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = f.Stop(sctx)
	st := f.Stats()
	var errs int64
	for _, n := range st.Errors {
		errs += n
	}
	line("stats runs=%d fetched=%d errors=%d", st.Runs, st.Fetched, errs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
