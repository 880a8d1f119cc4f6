package fleet_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

// helperEnv, when set, makes the test binary a worker process (see
// helperMain) instead of running tests: the two-process tests start
// their workers this way.
const helperEnv = "UNIMAIL_FLEET_HELPER"

// The worker process's settings, in its environment.
const (
	envDB  = "UNIMAIL_FLEET_DB"  // "sqlite" or "postgres"
	envDSN = "UNIMAIL_FLEET_DSN" // the SQLite path or the PostgreSQL DSN
	envOut = "UNIMAIL_FLEET_OUT" // the directory of the accounts' files
	// envProfile chooses the worker's options and handler: empty for
	// workerOptions and appendFile, profileDovecot for
	// dovecotWorkerOptions and sessionLog (see dovecot_test.go).
	envProfile = "UNIMAIL_FLEET_PROFILE"
)

// workerOptions are the worker processes' options: short periods, so
// that a dead worker's accounts move within seconds, and small groups,
// which bound the duplicates a kill can cause (Workers × Batch.Messages).
func workerOptions(h mailaccess.Handler, id string) *fleet.Options {
	o := testOptions(h)
	o.ID = id
	o.Workers = killWorkers
	o.Batch = mailaccess.Batch{Messages: killBatch}
	o.JobTimeout, o.PushPeriod, o.RescueAfter = 5*time.Second, 2*time.Second, 8*time.Second
	return o
}

const killWorkers, killBatch = 4, 3

// appendFile is a durable handler: it appends the message's first line
// and the worker's name to <dir>/<account>.log and syncs the file before it returns nil.
func appendFile(dir, worker string) mailaccess.Handler {
	return func(ctx context.Context, m *mailaccess.Message) error {
		id, ok := fleet.AccountID(ctx)
		if !ok {
			return fmt.Errorf("no account")
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // a handler with some work to do: sessions overlap the kill
		return appendLine(dir, id, messageID(b)+"\t"+worker+"\n")
	}
}

// appendLine appends line to <dir>/<account>.log and syncs the file
// before it returns nil.
func appendLine(dir, account, line string) error {
	f, err := os.OpenFile(filepath.Join(dir, account+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// helperMain is a worker process: it opens the fleet, works its accounts
// and, on SIGTERM, stops gracefully and exits 0.
func helperMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := workerOptions(appendFile(os.Getenv(envOut), os.Getenv(helperEnv)), os.Getenv(helperEnv))
	if os.Getenv(envProfile) == profileDovecot {
		opts = dovecotWorkerOptions(sessionLog(os.Getenv(envOut), os.Getenv(helperEnv)), os.Getenv(helperEnv))
	}
	var f *fleet.Fleet
	var err error
	if os.Getenv(envDB) == "sqlite" {
		f, err = fleet.OpenSQLite(ctx, os.Getenv(envDSN), opts)
	} else {
		f, err = fleet.OpenPostgres(ctx, os.Getenv(envDSN), opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	if err := f.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		return 1
	}
	fmt.Println("started")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
		return 1
	}
	st := f.Stats()
	fmt.Fprintf(os.Stderr, "stats: runs %d fetched %d errors %v fenced %d\n", st.Runs, st.Fetched, st.Errors, st.Fenced)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// workerProcess is a worker started by a test.
type workerProcess struct {
	cmd    *exec.Cmd
	stderr string // its file
	done   chan error
}

// startWorker starts the test binary as a worker process named id, and
// returns once it has started working. env holds further NAME=value
// settings of the worker (envProfile). The test kills it, if still
// running, when it ends.
func startWorker(t *testing.T, db database, out, id string, env ...string) *workerProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+id, envDB+"="+db.name, envDSN+"="+db.dsn(t), envOut+"="+out)
	cmd.Env = append(cmd.Env, env...)
	w := &workerProcess{cmd: cmd, stderr: filepath.Join(t.TempDir(), id+".stderr"), done: make(chan error, 1)}
	errf, err := os.Create(w.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-w.done
		w.done <- nil
		if t.Failed() {
			b, _ := os.ReadFile(w.stderr)
			t.Logf("worker %s's stderr:\n%s", id, lastLines(string(b), 30))
		}
	})
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "started\n" {
		b, _ := os.ReadFile(w.stderr)
		t.Fatalf("worker %s did not start (%v): %s", id, err, b)
	}
	go io.Copy(io.Discard, stdout)
	return w
}

// stop stops the worker with SIGTERM and waits for it to exit 0.
func (w *workerProcess) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			b, _ := os.ReadFile(w.stderr)
			t.Errorf("worker exited with %v: %s", err, lastLines(string(b), 30))
		}
	case <-time.After(2 * time.Minute):
		t.Errorf("worker did not stop")
	}
}

// kill kills the worker with SIGKILL, as a crash would.
func (w *workerProcess) kill(t *testing.T) {
	w.cmd.Process.Signal(syscall.SIGKILL)
	err := <-w.done
	w.done <- err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
