package dialopt

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

func TestResolve(t *testing.T) {
	r := Resolve(nil)
	if r.Timeout != time.Minute || r.DialTimeout != 30*time.Second || r.DialContext == nil || r.Logger == nil {
		t.Fatalf("defaults: %+v", r)
	}
	dial := func(context.Context, string, string) (net.Conn, error) { return nil, io.EOF }
	log := slog.New(slog.DiscardHandler)
	in := &mailaccess.DialOptions{
		Auth:     mailaccess.Auth{Username: "alice"},
		Security: mailaccess.SecurityStartTLS, Timeout: -1, DialTimeout: -1,
		DialContext: dial, Logger: log,
	}
	r = Resolve(in)
	if r.Timeout != -1 || r.DialTimeout != -1 || r.Auth.Username != "alice" || r.Security != mailaccess.SecurityStartTLS || r.Logger != log {
		t.Fatalf("given values changed: %+v", r)
	}
	if _, err := r.DialContext(t.Context(), "tcp", "x"); err != io.EOF {
		t.Fatal("the given dialer was replaced")
	}
	if in.Timeout != -1 {
		t.Fatal("Resolve changed its argument")
	}
}

func TestTLSConfig(t *testing.T) {
	c := TLSConfig(nil, "mail.example.com")
	if c.ServerName != "mail.example.com" || c.MinVersion != tls.VersionTLS12 || c.RootCAs != nil {
		t.Fatalf("default: %+v", c)
	}
	given := &tls.Config{ServerName: "other.example.com"}
	c = TLSConfig(given, "mail.example.com")
	if c == given || c.ServerName != "other.example.com" {
		t.Fatalf("given: %+v", c)
	}
	given = &tls.Config{}
	c = TLSConfig(given, "mail.example.com")
	if c.ServerName != "mail.example.com" || given.ServerName != "" {
		t.Fatal("the given config was changed, or ServerName not filled in")
	}
}

// TestDialBounds: DialTimeout zero is 30 s, negative none, positive itself.
func TestDialBounds(t *testing.T) {
	for _, c := range []struct {
		dialTimeout time.Duration
		want        time.Duration // 0: no deadline
	}{{0, 30 * time.Second}, {-1, 0}, {time.Hour, time.Hour}} {
		var got time.Duration
		o := Resolve(&mailaccess.DialOptions{DialTimeout: c.dialTimeout, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if dl, ok := ctx.Deadline(); ok {
				got = time.Until(dl)
			}
			return nil, io.EOF
		}})
		_, _ = Dial(context.Background(), &o, "pop3", "h:1")
		if c.want == 0 && got != 0 || c.want != 0 && (got > c.want || got < c.want-10*time.Second) {
			t.Errorf("DialTimeout %v: the dialer had %v, want %v", c.dialTimeout, got, c.want)
		}
	}
}

// TestDialErrors: whose bound ended the dial decides the error.
func TestDialErrors(t *testing.T) {
	block := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	// The caller's deadline, met by a socket before the context's timer:
	// the dialer sleeps to the deadline and reports a socket timeout.
	socket := func(ctx context.Context, _, _ string) (net.Conn, error) {
		dl, _ := ctx.Deadline()
		time.Sleep(time.Until(dl))
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	}
	for _, c := range []struct {
		name        string
		dial        func(context.Context, string, string) (net.Conn, error)
		dialTimeout time.Duration
		ctxTimeout  time.Duration
		want        string
		temporary   bool
	}{
		{"caller's deadline", block, time.Hour, 20 * time.Millisecond, "pop3 connect: connection failed: context deadline exceeded", false},
		{"caller's deadline at the socket", socket, time.Hour, 20 * time.Millisecond, "pop3 connect: connection failed: context deadline exceeded", false},
		{"DialTimeout", block, 20 * time.Millisecond, time.Hour, "pop3 connect: connection failed: timed out after 20ms", true},
		{"DialTimeout at the socket", socket, 20 * time.Millisecond, time.Hour, "pop3 connect: connection failed: timed out after 20ms", true},
		{"the dialer's own timeout", func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
		}, time.Hour, time.Hour, "pop3 connect: connection failed: dial tcp: context deadline exceeded", true},
		{"refused", func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("connection refused")
		}, time.Hour, time.Hour, "pop3 connect: connection failed: connection refused", true},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), c.ctxTimeout)
		o := Resolve(&mailaccess.DialOptions{DialTimeout: c.dialTimeout, DialContext: c.dial})
		conn, err := Dial(ctx, &o, "pop3", "h:1")
		cancel()
		if conn != nil || err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
			continue
		}
		if mailaccess.IsTemporary(err) != c.temporary || !errors.Is(err, mailaccess.ErrConnection) {
			t.Errorf("%s: %v: IsTemporary %v, want %v", c.name, err, mailaccess.IsTemporary(err), c.temporary)
		}
		if _, ok := errors.AsType[*mailerr.TimeoutError](err); ok != (c.dialTimeout < time.Hour) {
			t.Errorf("%s: %v: TimeoutError %v", c.name, err, ok)
		}
	}
}
