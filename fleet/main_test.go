package fleet_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/internal/pgtest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(pgtest.Main(m))
}

// password is the password of a test user: the Credentials callback of
// every test process derives it from the user name.
func password(user string) string { return "pw-" + user + "-secret" }

// credentials is the tests' Options.Credentials.
func credentials(_ context.Context, a fleet.Account) (mailaccess.Auth, error) {
	t, err := unimail.ParseURL(a.URL)
	if err != nil {
		return mailaccess.Auth{}, err
	}
	return mailaccess.Auth{Username: t.User, Password: password(t.User)}, nil
}

// testOptions are short timings for tests; handler is the one handler,
// "collect".
func testOptions(h mailaccess.Handler) *fleet.Options {
	return &fleet.Options{
		Credentials:  credentials,
		Handlers:     map[string]mailaccess.Handler{"collect": h},
		Dial:         &unimail.Options{InsecureCleartext: true, DialOptions: mailaccess.DialOptions{Timeout: 20 * time.Second}},
		Workers:      20,
		JobTimeout:   20 * time.Second,
		PushPeriod:   3 * time.Second,
		RescueAfter:  25 * time.Second,
		Backoff:      200 * time.Millisecond,
		MaxBackoff:   2 * time.Second,
		PollInterval: 50 * time.Millisecond,
		CheckEvery:   2 * time.Second,
		Batch:        mailaccess.Batch{Messages: 4},
	}
}

// message is the n-th test message of user, identified by its first
// line.
func message(user string, n int) []byte {
	return fmt.Appendf(nil, "Message-ID: <%s-%d@test>\r\nSubject: %d\r\n\r\nHello %s\r\n", user, n, n, user)
}

// messageID returns the first line of a test message.
func messageID(raw []byte) string {
	s, _, _ := strings.Cut(string(raw), "\r\n")
	return s
}

// collector is a handler that remembers what each account received.
type collector struct {
	mu  sync.Mutex
	got map[string][]string // account ID -> message IDs, in order
}

func newCollector() *collector { return &collector{got: map[string][]string{}} }

func (c *collector) handle(ctx context.Context, m *mailaccess.Message) error {
	id, ok := fleet.AccountID(ctx)
	if !ok {
		return errors.New("no account in the handler's context")
	}
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.got[id] = append(c.got[id], messageID(b))
	c.mu.Unlock()
	return nil
}

// ids returns a copy of what the account received.
func (c *collector) ids(id string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got[id]...)
}

func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got[id])
}

// logins counts, per user, the sessions open at once on a server: from
// the login line that the server reads (USER, LOGIN or AUTHENTICATE
// PLAIN's user) until the client's QUIT or LOGOUT, or the end of the
// connection. overlaps counts the logins that found another session of
// the same user open.
type logins struct {
	mu       sync.Mutex
	open     map[string]int
	overlaps map[string]int
	total    int
	now, max int // sessions of all users open now, and the most at once
}

// Max returns the most sessions that were open at once, all users
// together.
func (l *logins) Max() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

func (l *logins) Overlaps() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.overlaps {
		n += v
	}
	return n
}

func (l *logins) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// countingConn is a server's end of a connection that reports logins.
type countingConn struct {
	net.Conn
	l     *logins
	buf   []byte
	user  string
	sasl  bool // the next line is a SASL PLAIN response
	ended bool
	once  sync.Once
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.ended {
		c.buf = append(c.buf, p[:n]...)
		for {
			i := strings.Index(string(c.buf), "\r\n")
			if i < 0 {
				break
			}
			c.line(string(c.buf[:i]))
			c.buf = c.buf[i+2:]
		}
	}
	return n, err
}

func (c *countingConn) line(s string) {
	f := strings.Fields(s)
	if c.sasl {
		c.sasl = false
		c.plain(s)
		return
	}
	// The verb and its arguments, after IMAP's tag.
	if len(f) >= 2 && !strings.EqualFold(f[0], "USER") && !strings.EqualFold(f[0], "AUTH") && !strings.EqualFold(f[0], "QUIT") {
		f = f[1:]
	}
	switch {
	case len(f) == 0:
	case c.user == "" && len(f) >= 2 && strings.EqualFold(f[0], "USER"):
		c.begin(f[1])
	case c.user == "" && len(f) >= 2 && strings.EqualFold(f[0], "LOGIN"):
		c.begin(strings.Trim(f[1], `"`))
	case c.user == "" && len(f) >= 2 && (strings.EqualFold(f[0], "AUTH") || strings.EqualFold(f[0], "AUTHENTICATE")) && strings.EqualFold(f[1], "PLAIN"):
		if len(f) >= 3 {
			c.plain(f[2])
		} else {
			c.sasl = true
		}
	case c.user != "" && (strings.EqualFold(f[0], "QUIT") || strings.EqualFold(f[0], "LOGOUT")):
		c.end()
	}
}

// plain reads the user of a SASL PLAIN response.
func (c *countingConn) plain(b64 string) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if parts := strings.Split(string(b), "\x00"); err == nil && len(parts) == 3 {
		c.begin(parts[1])
	}
}

func (c *countingConn) begin(user string) {
	c.user = user
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.total++
	c.l.now++
	c.l.max = max(c.l.max, c.l.now)
	if c.l.open[user] > 0 {
		c.l.overlaps[user]++
	}
	c.l.open[user]++
}

func (c *countingConn) end() {
	c.once.Do(func() {
		c.ended = true
		if c.user == "" {
			return
		}
		c.l.mu.Lock()
		c.l.open[c.user]--
		c.l.now--
		c.l.mu.Unlock()
	})
}

func (c *countingConn) Close() error {
	c.end()
	return c.Conn.Close()
}

// serveCounting serves connections on 127.0.0.1 with serve, through
// countingConn, until the test ends.
func serveCounting(t *testing.T, serve func(net.Conn)) (string, *logins) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &logins{open: map[string]int{}, overlaps: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(&countingConn{Conn: c, l: l}) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), l
}

// popServer is a POP3 server (cleartext with STLS) with users u0..u(n-1),
// each holding msgs messages.
func popServer(t *testing.T, cfg *poptest.Config, prefix string, n, msgs int) (*poptest.Server, string, *logins) {
	s := poptest.NewUnstartedServer(cfg)
	t.Cleanup(s.Close)
	for i := range n {
		u := fmt.Sprintf("%s%d", prefix, i)
		s.AddUser(u, password(u))
		for j := range msgs {
			s.AddMessage(u, message(u, j))
		}
	}
	addr, l := serveCounting(t, s.ServeConn)
	return s, addr, l
}

// imapServer is an IMAP server with users u0..u(n-1), each holding msgs
// messages in INBOX.
func imapServer(t *testing.T, cfg *imaptest.Config, prefix string, n, msgs int) (*imaptest.Server, string, *logins) {
	if cfg == nil {
		cfg = &imaptest.Config{}
	}
	cfg.Logger = discard{}
	s := imaptest.NewUnstartedServer(cfg)
	t.Cleanup(s.Close)
	for i := range n {
		u := fmt.Sprintf("%s%d", prefix, i)
		s.AddUser(u, password(u))
		for j := range msgs {
			s.Append(u, "INBOX", message(u, j))
		}
	}
	addr, l := serveCounting(t, s.ServeConn)
	return s, addr, l
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// database is where a test's fleet lives.
type database struct {
	name string
	dsn  func(t *testing.T) string // the SQLite path or the PostgreSQL DSN, made once
}

// databases returns a new SQLite file and a new PostgreSQL database.
func databases(t *testing.T) []database {
	path := filepath.Join(t.TempDir(), "fleet.db")
	var pg string
	return []database{
		{name: "sqlite", dsn: func(*testing.T) string { return path }},
		{name: "postgres", dsn: func(t *testing.T) string {
			if pg == "" {
				pg = pgtest.Shared(t).NewDatabase(t)
			}
			return pg
		}},
	}
}

// open opens a Fleet in the database, closed when the test ends.
func (db database) open(t *testing.T, opts *fleet.Options) *fleet.Fleet {
	t.Helper()
	f, err := db.openErr(t, opts)
	if err != nil {
		t.Fatalf("open %s: %v", db.name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func (db database) openErr(t *testing.T, opts *fleet.Options) (*fleet.Fleet, error) {
	if db.name == "sqlite" {
		return fleet.OpenSQLite(t.Context(), db.dsn(t), opts)
	}
	return fleet.OpenPostgres(t.Context(), db.dsn(t), opts)
}

// sql opens the database directly, for what a test does behind the
// fleet's back.
func (db database) sql(t *testing.T) *sql.DB {
	driver, dsn := "pgx", db.dsn(t)
	if db.name == "sqlite" {
		driver, dsn = "sqlite", dsn+"?_pragma=busy_timeout(10000)"
	}
	d, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// waitFor waits until cond holds, failing the test after timeout. The
// timeouts are generous: the machine may be loaded.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
