package fleet_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// The sizes of the tests against a real Dovecot: thousands of users,
// few enough accounts that the tests stay under a minute on two CPUs,
// also under -race.
const (
	dovecotManyUsers = 2000 // TestDovecotManyAccounts's accounts
	dovecotManyMsgs  = 2    // messages in each of their INBOXes
	// dovecotManyRaceAccounts is how many of the 2,000 users are the
	// fleet's accounts under the race detector, which slows the SQLite
	// fleet (River's queries, the fleet's and the state's) ten to twenty
	// times: all 2,000 would take minutes.
	dovecotManyRaceAccounts = 250
	dovecotKillUsers        = 400 // TestDovecotKillWorker's accounts
	dovecotKillMsgs         = 4   // messages in each of their INBOXes, more than killBatch
	// dovecotKillWorkers is the Workers and HostLimit of the worker
	// processes of TestDovecotKillWorker: at most that many of the
	// killed process's sessions are cut short.
	dovecotKillWorkers = 8
)

// profileDovecot is the value of envProfile that makes a worker process
// work TestDovecotKillWorker's accounts.
const profileDovecot = "dovecot"

// dovecotConfig is what the fleet tests add to the harness's Dovecot
// configuration. Log timestamps carry microseconds, so that the log tells
// whether two sessions of one user overlapped (dovecotOverlaps); the
// default login_log_format_elements and mail_log_prefix already name each
// session (session=<...>).
//
// The limits need no raising: each process of the fleet holds at most
// HostLimit sessions (16, or 2×8 for the two processes of the kill test),
// well within Dovecot's 100 processes per service (default_process_limit)
// and the harness's mail_max_userip_connections = 1000. What thousands of
// short sessions need is speed: by default every login starts a new
// imap-login process and every session a new imap process, which on a
// loaded two-CPU machine caps Dovecot at about ten sessions a second.
// Login processes that serve many connections (service_count = 0, the
// "high-performance mode") and imap processes reused for up to 1,000
// sessions, 16 of them started ahead, take it past a hundred. (Reusing a
// mail process for another user is safe here: every user's mail belongs
// to the same system user, mail_uid.)
const dovecotConfig = `
log_timestamp = "%Y-%m-%d %H:%M:%S.%{usecs} "
service imap-login {
  service_count = 0
  process_min_avail = 2
}
service imap {
  service_count = 1000
  process_min_avail = 16
}
`

// startDovecot starts a Dovecot whose users <prefix>0..<prefix>(n-1) have
// the tests' passwords (see password), each INBOX seeded with msgs
// messages (message(user, 0..msgs-1)).
func startDovecot(t *testing.T, prefix string, n, msgs int) *dovecottest.Server {
	t.Helper()
	users := make(map[string]string, n)
	for i := range n {
		u := fmt.Sprintf("%s%d", prefix, i)
		users[u] = password(u)
	}
	begin := time.Now()
	srv := dovecottest.Start(t, &dovecottest.Options{Users: users, ExtraConfig: dovecotConfig})
	t.Logf("Dovecot with %d users started in %s", n, time.Since(begin).Round(time.Millisecond))
	// Append, unlike Seed, does not look for open sessions first (a scan
	// of /proc per call), and nothing has connected yet.
	for i := range n {
		u := fmt.Sprintf("%s%d", prefix, i)
		for j := range msgs {
			srv.Append(t, u, "INBOX", message(u, j))
		}
	}
	return srv
}

// dovecotAccount is the account of user u of srv, drained on every run.
func dovecotAccount(srv *dovecottest.Server, u string, every time.Duration) fleet.Account {
	return fleet.Account{ID: u, URL: fmt.Sprintf("imap://%s@%s/INBOX", u, srv.IMAPAddr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: every}
}

// dovecotAccounts returns the users <prefix>0 ... <prefix>n-1 and their
// accounts (dovecotAccount), in that order.
func dovecotAccounts(srv *dovecottest.Server, prefix string, n int, every time.Duration) ([]string, []fleet.Account) {
	users := make([]string, n)
	accts := make([]fleet.Account, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", prefix, i)
		accts[i] = dovecotAccount(srv, users[i], every)
	}
	return users, accts
}

// fastSQLite is an SQLite database for a test, on /dev/shm (tmpfs) when
// the machine has one, as the Dovecot harness places its files: thousands
// of accounts make thousands of commits, each synced (synchronous=FULL),
// which some disks take tens of milliseconds for.
func fastSQLite(t *testing.T) database {
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fleettest-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
	}
	path := filepath.Join(dir, "fleet.db")
	return database{name: "sqlite", dsn: func(*testing.T) string { return path }}
}

// addAll registers the accounts, parallel at a time.
func addAll(t *testing.T, f *fleet.Fleet, accts []fleet.Account, parallel int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	next := make(chan fleet.Account)
	for range parallel {
		wg.Go(func() {
			for a := range next {
				if err := f.Add(t.Context(), a); err != nil {
					errs <- fmt.Errorf("Add(%s): %w", a.ID, err)
					return
				}
			}
		})
	}
	var err error
feed:
	for _, a := range accts {
		select {
		case next <- a:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// waitEmpty waits until the INBOX of every user is empty on srv (read
// from the Maildirs), looking again only at the ones that were not.
func waitEmpty(t *testing.T, srv *dovecottest.Server, users []string, timeout time.Duration) {
	t.Helper()
	pending := slices.Clone(users)
	deadline := time.Now().Add(timeout)
	for {
		pending = slices.DeleteFunc(pending, func(u string) bool { return len(srv.Messages(t, u, "INBOX")) == 0 })
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %d INBOXes to be drained, such as %s's (%d messages left)", timeout, len(pending), pending[0], len(srv.Messages(t, pending[0], "INBOX")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The Dovecot log's lines that open and close an IMAP session: the login
// process logs the login with the session's ID, and the session's own
// process its end (a LOGOUT, or the connection closing, as when the
// client was killed).
var (
	dovecotLoginRE = regexp.MustCompile(`^(\S+ \S+) imap-login: (?:Info: )?Login: user=<([^>]*)>.*session=<([^>]*)>`)
	dovecotEndRE   = regexp.MustCompile(`^(\S+ \S+) imap\(([^)]*)\)<\d+><([^>]*)>: (?:Info: )?(?:Logged out|Disconnected)`)
)

// span is a stretch of time, of one session.
type span struct {
	name       string
	start, end time.Time
}

// overlapping returns a description of each span that begins before
// the one before it (in order of start) has ended.
func overlapping(owner string, spans []span) []string {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	var out []string
	for i := 1; i < len(spans); i++ {
		if p, s := spans[i-1], spans[i]; s.start.Before(p.end) {
			out = append(out, fmt.Sprintf("%s: session %s (%s to %s) overlaps %s (%s to %s)", owner,
				s.name, s.start.Format("15:04:05.000000"), s.end.Format("15:04:05.000000"),
				p.name, p.start.Format("15:04:05.000000"), p.end.Format("15:04:05.000000")))
		}
	}
	return out
}

// dovecotOverlaps reads the Dovecot log and returns how many IMAP
// sessions it shows and a description of every session that began while
// another session of the same user was still open. A session is open
// from its login to its end as the server logged them; a session whose
// end is not logged is open for ever. Dovecot is the authority here: it
// sees every session, even one that delivered nothing.
func dovecotOverlaps(t *testing.T, srv *dovecottest.Server) (int, []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(srv.Dir, "dovecot.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parse := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.Local)
		if err != nil {
			t.Fatalf("the Dovecot log's timestamp %q: %v", s, err)
		}
		return tm
	}
	type session struct {
		user       string
		start, end time.Time
	}
	sessions := map[string]*session{}
	get := func(id, user string) *session {
		s := sessions[id]
		if s == nil {
			s = &session{user: user, end: time.Unix(math.MaxInt32, 0)}
			sessions[id] = s
		}
		return s
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := dovecotLoginRE.FindStringSubmatch(sc.Text()); m != nil {
			get(m[3], m[2]).start = parse(m[1])
		} else if m := dovecotEndRE.FindStringSubmatch(sc.Text()); m != nil {
			get(m[3], m[2]).end = parse(m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	byUser := map[string][]span{}
	n := 0
	for id, s := range sessions {
		if s.start.IsZero() {
			continue // ended, but its login was not found: not a session of a user
		}
		n++
		byUser[s.user] = append(byUser[s.user], span{id, s.start, s.end})
	}
	var out []string
	for u, spans := range byUser {
		out = append(out, overlapping(u, spans)...)
	}
	sort.Strings(out)
	return n, out
}

// TestDovecotManyAccounts: one process on SQLite drains 2,000 accounts of
// a real Dovecot (a passwd-file of 2,000 users; 250 of them under the
// race detector, see dovecotManyRaceAccounts): every message delivered
// exactly once, every INBOX empty afterwards, every account's row showing
// its success and its two messages, and no user ever in two sessions at
// once, as Dovecot's log tells.
func TestDovecotManyAccounts(t *testing.T) {
	start := time.Now()
	srv := startDovecot(t, "u", dovecotManyUsers, dovecotManyMsgs)
	t.Logf("Dovecot with %d users seeded in %s", dovecotManyUsers, time.Since(start).Round(time.Millisecond))
	n := dovecotManyUsers
	if raceDetector {
		n = dovecotManyRaceAccounts
	}
	c := newCollector()
	opts := testOptions(c.handle)
	opts.Workers, opts.HostLimit = 32, 16
	f := fastSQLite(t).open(t, opts)
	users, accts := dovecotAccounts(srv, "u", n, 10*time.Second)
	addAll(t, f, accts, 4)
	t.Logf("accounts added after %s", time.Since(start).Round(time.Millisecond))
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var accounts []fleet.AccountStatus
	lastLog := time.Now()
	waitFor(t, 2*time.Minute, "every account's two messages recorded", func() bool {
		time.Sleep(time.Second) // reading thousands of rows competes with the fleet's writes
		as, err := f.Accounts(t.Context())
		if err != nil || len(as) != n {
			return false
		}
		done, kinds := 0, map[string]int{}
		for _, a := range as {
			if a.Fetched >= dovecotManyMsgs && !a.LastSuccess.IsZero() {
				done++
			}
			if a.LastErrorKind != "" {
				kinds[a.LastErrorKind+": "+a.LastErrorText]++
			}
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("%d of %d accounts drained; stats %+v; last errors %v", done, n, f.Stats(), kinds)
		}
		if done < len(as) {
			return false
		}
		accounts = as
		return true
	})
	t.Logf("every account drained after %s", time.Since(start).Round(time.Millisecond))
	waitEmpty(t, srv, users, 30*time.Second)
	if err := f.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	var lost, dups int
	for _, u := range users {
		seen := map[string]int{}
		for _, id := range c.ids(u) {
			seen[id]++
		}
		for j := range dovecotManyMsgs {
			want := messageID(message(u, j))
			switch n := seen[want]; {
			case n == 0:
				lost++
				t.Errorf("%s: message %d never delivered", u, j)
			case n > 1:
				dups += n - 1
			}
			delete(seen, want)
		}
		if len(seen) > 0 {
			t.Errorf("%s: unexpected deliveries %v", u, seen)
		}
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries, want none: nothing failed", dups)
	}
	for _, a := range accounts {
		if a.Fetched != dovecotManyMsgs || a.LastSuccess.IsZero() || a.Stopped || a.LastErrorKind != "" {
			t.Errorf("account %s: Fetched %d, LastSuccess %v, Stopped %v, last error %s %s", a.ID, a.Fetched, a.LastSuccess, a.Stopped, a.LastErrorKind, a.LastErrorText)
		}
	}
	sessions, overlaps := dovecotOverlaps(t, srv)
	for _, o := range overlaps {
		t.Error(o)
	}
	if sessions < n {
		t.Errorf("the Dovecot log shows %d sessions, fewer than the %d accounts", sessions, n)
	}
	st := f.Stats()
	t.Logf("%d messages of %d accounts delivered, %d lost, %d duplicates, %d Dovecot sessions, stats: runs %d, errors %v; %s in all",
		n*dovecotManyMsgs, n, lost, dups, sessions, st.Runs, st.Errors, time.Since(start).Round(time.Millisecond))
}

// dovecotWorkerOptions are the options of TestDovecotKillWorker's worker
// processes: short periods, so that the killed worker's accounts move
// within seconds, Workers and HostLimit of dovecotKillWorkers, and groups
// of killBatch messages, which bound the duplicates.
func dovecotWorkerOptions(h mailaccess.Handler, id string) *fleet.Options {
	o := testOptions(h)
	o.ID = id
	o.Workers, o.HostLimit = dovecotKillWorkers, dovecotKillWorkers
	o.Batch = mailaccess.Batch{Messages: killBatch}
	o.JobTimeout, o.PushPeriod, o.RescueAfter = 5*time.Second, 2*time.Second, 8*time.Second
	return o
}

// sessionLog is a durable handler that tells sessions apart: for each
// message it appends "<first line>\t<worker>\t<session>\t<unix ns>" to
// <dir>/<account>.log and syncs the file before it returns nil. The
// session is named by the worker and a number per Fetch: the Fetcher
// passes every handler of one run the same context, which the handler
// keeps (so that no later context takes its place).
func sessionLog(dir, worker string) mailaccess.Handler {
	var mu sync.Mutex
	sessions := map[context.Context]int{}
	return func(ctx context.Context, m *mailaccess.Message) error {
		id, ok := fleet.AccountID(ctx)
		if !ok {
			return fmt.Errorf("no account")
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		mu.Lock()
		n, ok := sessions[ctx]
		if !ok {
			n = len(sessions) + 1
			sessions[ctx] = n
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a handler with some work to do: sessions overlap the kill
		return appendLine(dir, id, fmt.Sprintf("%s\t%s\t%s-%d\t%d\n", messageID(b), worker, worker, n, time.Now().UnixNano()))
	}
}

// delivery is one line of sessionLog.
type delivery struct {
	msg, worker, session string
	at                   time.Time
}

func parseDelivery(t *testing.T, line string) delivery {
	f := strings.Split(line, "\t")
	if len(f) != 4 {
		t.Fatalf("bad delivery line %q", line)
	}
	ns, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		t.Fatalf("bad delivery line %q", line)
	}
	return delivery{f[0], f[1], f[2], time.Unix(0, ns)}
}

// countLines counts the lines of the files in dir, by worker (the second
// field).
func countLines(t *testing.T, dir string) (int, map[string]int) {
	total, by := 0, map[string]int{}
	for _, lines := range readAll(t, dir) {
		for _, l := range lines {
			total++
			by[strings.Split(l, "\t")[1]]++
		}
	}
	return total, by
}

// riverLeader returns the ID of the worker process that leads River's
// maintenance (the rescuer among it), or "" if none does.
func riverLeader(t *testing.T, db database) string {
	var id string
	if err := db.sql(t).QueryRowContext(t.Context(), "SELECT leader_id FROM river_leader").Scan(&id); err != nil {
		return ""
	}
	return id
}

// TestDovecotKillWorker: two worker processes on PostgreSQL share 400
// accounts of a real Dovecot; one is killed with SIGKILL while its
// handlers are taking messages. The survivor takes over its accounts
// once River rescues their jobs, and at the end:
//   - no message is lost: every seeded message of every account is in
//     the account's file (the handler syncs it there before it returns)
//     and every INBOX is empty;
//   - duplicates are counted and bounded: only a session that the kill
//     cut short delivers again, and only its last, unrecorded group (the
//     batch contract of mailaccess: a group's retention applies only
//     after it is recorded, and a recorded message is never delivered
//     again). The killed process ran at most dovecotKillWorkers sessions,
//     so at most that many accounts have duplicates, each at most one
//     group (killBatch messages): dovecotKillWorkers×killBatch in all;
//   - no account was ever in two sessions at once, seen from both ends:
//     on the handler's side, the deliveries of the sessions of one account
//     (each session from its first to its last delivery) never
//     interleave; on the server's side, Dovecot's log shows no session of
//     a user that began before the previous one ended.
func TestDovecotKillWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	begin := time.Now()
	db := databases(t)[1]
	db.dsn(t) // a missing PostgreSQL skips (or fails) before Dovecot starts
	srv := startDovecot(t, "k", dovecotKillUsers, dovecotKillMsgs)
	out := t.TempDir()
	reg := db.open(t, nil) // registers the accounts, works none
	// Every is long enough that the accounts already drained do not fill
	// the workers with empty polls while the others, and the killed
	// worker's, wait.
	users, accts := dovecotAccounts(srv, "k", dovecotKillUsers, 20*time.Second)
	addAll(t, reg, accts, 8)
	t.Logf("Dovecot seeded and accounts added after %s", time.Since(begin).Round(time.Millisecond))
	env := envProfile + "=" + profileDovecot
	workers := map[string]*workerProcess{"w1": startWorker(t, db, out, "w1", env), "w2": startWorker(t, db, out, "w2", env)}

	// Kill a worker once a tenth of the mail is delivered, right after
	// one of its handlers took a message: in the middle of a session.
	// The one that leads River's maintenance is killed: the survivor
	// takes the lead once the dead leader's term has expired (15 s), and
	// its rescuer, starting then, at once takes back the jobs that have
	// been running for longer than RescueAfter (8 s). (The rescuer of a
	// leader that lives on looks only every 30 s.)
	all := dovecotKillUsers * dovecotKillMsgs
	waitFor(t, 2*time.Minute, "a tenth of the deliveries", func() bool {
		time.Sleep(50 * time.Millisecond)
		n, _ := countLines(t, out)
		return n >= all/10
	})
	victim, survivor := "w1", "w2"
	if riverLeader(t, db) == "w2" {
		victim, survivor = "w2", "w1"
	}
	_, by := countLines(t, out)
	n := by[victim]
	waitFor(t, time.Minute, victim+" delivering", func() bool {
		_, by := countLines(t, out)
		return by[victim] > n
	})
	workers[victim].kill(t)
	if ws, ok := workers[victim].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("worker %s ended with %v, not by SIGKILL", victim, workers[victim].cmd.ProcessState)
	}
	killed := time.Now()
	delivered, _ := countLines(t, out)
	t.Logf("killed %s after %s, with %d of %d messages delivered", victim, time.Since(begin).Round(time.Millisecond), delivered, all)

	waitEmpty(t, srv, users, 2*time.Minute)
	t.Logf("every INBOX drained %s after the kill", time.Since(killed).Round(time.Millisecond))
	workers[survivor].stop(t)

	got := readAll(t, out)
	var lost, dups, dupAccounts int
	byWorker := map[string]int{}
	for _, u := range users {
		seen := map[string]int{}
		sessions := map[string]*span{}
		for _, line := range got[u] {
			d := parseDelivery(t, line)
			seen[d.msg]++
			byWorker[d.worker]++
			s := sessions[d.session]
			if s == nil {
				s = &span{name: d.session, start: d.at}
				sessions[d.session] = s
			}
			s.end = d.at
		}
		accountDups := 0
		for j := range dovecotKillMsgs {
			want := messageID(message(u, j))
			if seen[want] == 0 {
				lost++
				t.Errorf("%s: message %d lost", u, j)
			}
			accountDups += max(seen[want]-1, 0)
			delete(seen, want)
		}
		if len(seen) > 0 {
			t.Errorf("%s: unexpected deliveries %v", u, seen)
		}
		if accountDups > 0 {
			dups += accountDups
			dupAccounts++
		}
		if accountDups > killBatch {
			t.Errorf("%s: %d duplicates, more than one group (%d)", u, accountDups, killBatch)
		}
		var spans []span
		for _, s := range sessions {
			spans = append(spans, *s)
		}
		for _, o := range overlapping(u, spans) {
			t.Errorf("handler: %s", o)
		}
	}
	sessions, overlaps := dovecotOverlaps(t, srv)
	for _, o := range overlaps {
		t.Errorf("Dovecot: %s", o)
	}
	t.Logf("%d messages of %d accounts: %d lost, %d duplicates on %d accounts (bound %d, at most %d per account), deliveries by worker %v, %d Dovecot sessions, %d jobs rescued; %s in all",
		all, dovecotKillUsers, lost, dups, dupAccounts, dovecotKillWorkers*killBatch, killBatch, byWorker, sessions, rescued(t, db), time.Since(begin).Round(time.Millisecond))
	if dupAccounts > dovecotKillWorkers {
		t.Errorf("%d accounts have duplicates, more than the sessions the kill could cut (%d)", dupAccounts, dovecotKillWorkers)
	}
	if byWorker[victim] == 0 || byWorker[survivor] == 0 {
		t.Errorf("deliveries by worker %v: both should have worked", byWorker)
	}
	if sessions < dovecotKillUsers {
		t.Errorf("the Dovecot log shows %d sessions, fewer than the %d accounts", sessions, dovecotKillUsers)
	}
}
