package unimail_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// TestDialFailureReturnsNil: whatever makes Dial fail, the Mailbox it
// returns is a true nil interface, so that "if mb != nil { defer
// mb.Abort() }" is safe.
func TestDialFailureReturnsNil(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	for _, proto := range []string{"pop3", "imap"} {
		srv := startServer(t, proto, true, false, fault{})
		stalled := startServer(t, proto, true, false, fault{at: stepLogin, stall: 10 * time.Second})
		ok := mailaccess.DialOptions{Auth: mailaccess.Auth{Password: vocabPassword}, TLSConfig: srv.tls, Timeout: 5 * time.Second}
		for _, c := range []struct {
			name string
			url  string
			opts mailaccess.DialOptions
			ctx  func() (context.Context, context.CancelFunc)
			kind error
		}{
			{"bad URL", proto + "s://al%zzice@" + srv.addr, ok, nil, mailaccess.ErrInvalidArgument},
			{"refused connection", proto + "s://alice@" + refused, ok, nil, mailaccess.ErrConnection},
			{"TLS failure", srv.url("s"), mailaccess.DialOptions{Auth: ok.Auth, Timeout: ok.Timeout}, nil, mailaccess.ErrTLS},
			{"wrong password", srv.url("s"), mailaccess.DialOptions{Auth: mailaccess.Auth{Password: "wrong"}, TLSConfig: srv.tls, Timeout: ok.Timeout}, nil, mailaccess.ErrAuth},
			{"caller's deadline", stalled.url("s"), mailaccess.DialOptions{Auth: ok.Auth, TLSConfig: stalled.tls, Timeout: ok.Timeout}, func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 200*time.Millisecond)
			}, context.DeadlineExceeded},
		} {
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if c.ctx != nil {
				ctx, cancel = c.ctx()
			}
			mb, err := unimail.Dial(ctx, c.url, &unimail.Options{DialOptions: c.opts})
			cancel()
			if mb != nil {
				t.Errorf("%s, %s: Dial returned a non-nil Mailbox (%T) with %v", proto, c.name, mb, err)
				mb.Abort()
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("%s, %s: %v, want %v", proto, c.name, err, c.kind)
			}
		}
	}
}

// TestNilMailbox: Abort and Close on a nil *pop.Mailbox or *imap.Mailbox
// (what their Dial returns with an error) do not panic.
func TestNilMailbox(t *testing.T) {
	var p *pop.Mailbox
	var i *imap.Mailbox
	for _, mb := range []mailaccess.Mailbox{p, i} {
		if err := mb.Abort(); err != nil {
			t.Errorf("%T: Abort = %v, want nil", mb, err)
		}
		err := mb.Close(t.Context())
		if !errors.Is(err, mailaccess.ErrInvalidArgument) || mailaccess.IsTemporary(err) {
			t.Errorf("%T: Close = %v, want a permanent ErrInvalidArgument", mb, err)
		}
	}
	// And what the drivers' Dial returns on failure is such a nil.
	mbp, err := pop.Dial(t.Context(), "no port", nil)
	if err == nil || mbp != nil {
		t.Fatalf("pop.Dial = %v, %v", mbp, err)
	}
	if err := mbp.Abort(); err != nil {
		t.Error(err)
	}
	mbi, err := imap.Dial(t.Context(), "\r\n", nil)
	if err == nil || mbi != nil {
		t.Fatalf("imap.Dial = %v, %v", mbi, err)
	}
	if err := mbi.Abort(); err != nil {
		t.Error(err)
	}
}

// expiring is a context whose deadline passes when expire is called: the
// test expires it when the server receives the command of the step under
// test, so that the caller's deadline strikes exactly in that step.
type expiring struct {
	context.Context
	once sync.Once
	done chan struct{}
}

func newExpiring(parent context.Context) *expiring {
	return &expiring{Context: parent, done: make(chan struct{})}
}

func (c *expiring) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *expiring) Done() <-chan struct{}       { return c.done }
func (c *expiring) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *expiring) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// stepCase is one step of a session, for TestDeadlineAtEveryStep.
type stepCase struct {
	name string
	op   string // the step's operation name (after the protocol)
	// at is the fault's step; stepNone for the connect and TLS steps,
	// which need no server fault.
	at step
}

var everyStep = []stepCase{
	{"connect", mailerr.OpConnect, stepNone},
	{"TLS handshake", mailerr.OpTLSHandshake, stepNone},
	{"greeting", mailerr.OpGreeting, stepGreeting},
	{"login", mailerr.OpLogin, stepLogin},
	{"list", mailerr.OpList, stepList},
	{"fetch", mailerr.OpFetch, stepFetch},
	{"commit", mailerr.OpCommit, stepCommit},
}

// silentServer accepts connections and never answers, not even a TLS
// handshake; hit is called at each connection.
func silentServer(t *testing.T, hit func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			if hit != nil {
				hit()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// stepSession runs a session in which step s stalls; ctx applies to the
// whole Dial for the steps up to login and to the one step otherwise.
// expire, when not nil, is called when the stalled step begins.
func stepSession(t *testing.T, proto string, s stepCase, ctx context.Context, expire func(), opts mailaccess.DialOptions) error {
	t.Helper()
	switch s.op {
	case mailerr.OpConnect:
		// A connection that never completes.
		opts.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			if expire != nil {
				expire()
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		_, err := unimail.Dial(ctx, proto+"s://alice@127.0.0.1:1", &unimail.Options{DialOptions: opts})
		return err
	}
	if expire != nil && (s.op == mailerr.OpTLSHandshake || s.op == mailerr.OpGreeting) {
		// The server sees the connection before the client's dial has
		// returned, and a context that ends then ends the dial: expire
		// once the client is past it.
		dialed := make(chan struct{})
		var once sync.Once
		opts.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			once.Do(func() { close(dialed) })
			return c, err
		}
		now := expire
		expire = func() {
			go func() {
				<-dialed
				now()
			}()
		}
	}
	if s.op == mailerr.OpTLSHandshake {
		addr := silentServer(t, expire)
		_, err := unimail.Dial(ctx, proto+"s://alice@"+addr, &unimail.Options{DialOptions: opts})
		return err
	}
	f := fault{at: s.at, stall: 10 * time.Second, hit: expire}
	if s.at == stepGreeting {
		// Cleartext, so that the greeting is the first thing the
		// server sends.
		srv := startServer(t, proto, false, false, f)
		_, err := unimail.Dial(ctx, srv.url(""), &unimail.Options{DialOptions: opts, InsecureCleartext: true})
		return err
	}
	srv := startServer(t, proto, true, false, f)
	opts.TLSConfig = srv.tls
	return session(func() context.Context { return ctx }, t, srv.url("s"), &unimail.Options{DialOptions: opts}, s.at)
}

// TestDeadlineAtEveryStep: when the caller's context ends in any step of
// a session (connect, TLS handshake, greeting, login, list, fetch,
// commit), the error holds the context's error and is never temporary;
// when the library's own Timeout (or DialTimeout) passes there instead,
// the error is a temporary one that says so. Both protocols, both ways,
// with the exact text.
func TestDeadlineAtEveryStep(t *testing.T) {
	auth := mailaccess.Auth{Password: vocabPassword}
	for _, proto := range []string{"pop3", "imap"} {
		for _, s := range everyStep {
			op := proto + " " + s.op
			t.Run(proto+"/"+s.name+"/caller", func(t *testing.T) {
				t.Parallel()
				ctx := newExpiring(t.Context())
				err := stepSession(t, proto, s, ctx, ctx.expire, mailaccess.DialOptions{Auth: auth, Timeout: 10 * time.Second})
				want := op + ": connection failed: context deadline exceeded"
				switch {
				case s.at == stepCommit && proto == "pop3":
					want = op + ": commit outcome unknown: connection failed: context deadline exceeded"
				case s.at == stepCommit:
					want = op + ": commit failed: connection failed: context deadline exceeded"
				}
				if err == nil || err.Error() != want {
					t.Errorf("\n got: %v\nwant: %s", err, want)
				}
				if !errors.Is(err, context.DeadlineExceeded) || mailaccess.IsTemporary(err) {
					t.Errorf("%v: IsTemporary = %v, want false, with context.DeadlineExceeded", err, mailaccess.IsTemporary(err))
				}
			})
			t.Run(proto+"/"+s.name+"/library", func(t *testing.T) {
				t.Parallel()
				const bound = 150 * time.Millisecond
				opts := mailaccess.DialOptions{Auth: auth, Timeout: bound}
				if s.op == mailerr.OpConnect {
					opts.DialTimeout = bound
				}
				start := time.Now()
				err := stepSession(t, proto, s, t.Context(), nil, opts)
				want := op + ": connection failed: timed out after 150ms"
				switch {
				case s.at == stepCommit && proto == "pop3":
					want = op + ": commit outcome unknown: connection failed: timed out after 150ms"
				case s.at == stepCommit:
					want = op + ": commit failed: connection failed: timed out after 150ms"
				}
				if err == nil || err.Error() != want {
					t.Errorf("\n got: %v\nwant: %s", err, want)
				}
				if _, ok := errors.AsType[*mailerr.TimeoutError](err); !ok || !mailaccess.IsTemporary(err) {
					t.Errorf("%v: IsTemporary = %v, want true, with a TimeoutError", err, mailaccess.IsTemporary(err))
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v: the library's timeout passes for the caller's deadline", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

// TestOneMillisecondDeadline: a real deadline of 1 ms on each call of a
// session, wherever it strikes, is never temporary.
func TestOneMillisecondDeadline(t *testing.T) {
	for _, proto := range []string{"pop3", "imap"} {
		for _, s := range everyStep {
			t.Run(proto+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
				defer cancel()
				err := stepSession(t, proto, s, ctx, nil, mailaccess.DialOptions{Auth: mailaccess.Auth{Password: vocabPassword}, Timeout: 10 * time.Second})
				if !errors.Is(err, context.DeadlineExceeded) || mailaccess.IsTemporary(err) {
					t.Errorf("%v: IsTemporary = %v, want false, with context.DeadlineExceeded", err, mailaccess.IsTemporary(err))
				}
			})
		}
	}
}

// pipeServer starts, inside the caller's synctest bubble, a server of
// proto that serves connections made over net.Pipe, with one user, one
// message and f as its fault, and returns the dialer that makes those
// connections.
func pipeServer(t *testing.T, proto string, f fault) func(context.Context, string, string) (net.Conn, error) {
	body := []byte(vocabMessage + "body\r\n")
	var serve func(net.Conn)
	if proto == "pop3" {
		s := poptest.NewUnstartedServer(&poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
			if c.Seq > 0 && contains(popCommands[f.at], c.Name) {
				return poptest.Fault{Stall: f.stall}
			}
			return poptest.Fault{}
		}})
		t.Cleanup(s.Close)
		s.AddUser(vocabUser, vocabPassword)
		s.AddMessage(vocabUser, body)
		serve = func(c net.Conn) { go s.ServeConn(c) }
	} else {
		s := imaptest.NewUnstartedServer(&imaptest.Config{Logger: discardLogger{}, Fault: func(c imaptest.Command) imaptest.Fault {
			if c.Seq > 0 && imapMatch(f.at, c) {
				return imaptest.Fault{Stall: f.stall}
			}
			return imaptest.Fault{}
		}})
		t.Cleanup(s.Close)
		s.AddUser(vocabUser, vocabPassword)
		s.Append(vocabUser, "INBOX", body)
		serve = s.ServeConn
	}
	return func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		serve(server)
		return client, nil
	}
}

// TestTimeoutMeaning: Timeout means the same in both drivers. Zero is one
// minute: a server that stalls for two minutes in the middle of a session
// is given up after one. Negative is no bound of the library's own, only
// the caller's context: the same server answers in the end, and nothing
// gives up in between. The time is synctest's, so the minutes pass at
// once.
func TestTimeoutMeaning(t *testing.T) {
	for _, proto := range []string{"pop3", "imap"} {
		for _, at := range []step{stepList, stepFetch, stepCommit} {
			for _, timeout := range []time.Duration{0, -1} {
				t.Run(fmt.Sprintf("%s/%v/timeout=%d", proto, at, timeout), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						dial := pipeServer(t, proto, fault{at: at, stall: 2 * time.Minute})
						opts := &unimail.Options{
							DialOptions: mailaccess.DialOptions{
								Auth:        mailaccess.Auth{Password: vocabPassword},
								Timeout:     timeout,
								DialContext: dial,
							},
							InsecureCleartext: true,
						}
						start := time.Now()
						err := session(t.Context, t, proto+"://"+vocabUser+"@pipe/", opts, at)
						took := time.Since(start)
						if timeout < 0 {
							if err != nil || took < 2*time.Minute {
								t.Fatalf("no Timeout: %v after %v, want success after the 2-minute stall", err, took)
							}
							return
						}
						te, ok := errors.AsType[*mailerr.TimeoutError](err)
						if !ok || te.After != time.Minute || took < time.Minute || took >= 2*time.Minute {
							t.Fatalf("default Timeout: %v after %v, want a timeout of 1m0s", err, took)
						}
					})
				})
			}
		}
	}
}
