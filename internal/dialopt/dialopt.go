// Package dialopt is the one reading of mailaccess.DialOptions that both
// drivers share: the defaults of the zero fields, the TLS configuration
// for a host, and the TCP connection bounded by DialTimeout.
package dialopt

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Defaults of the zero fields of mailaccess.DialOptions.
const (
	// DefaultTimeout is Timeout when it is zero.
	DefaultTimeout = time.Minute
	// DefaultDialTimeout is DialTimeout when it is zero.
	DefaultDialTimeout = 30 * time.Second
)

// keepAlive is the default dialer's TCP keep-alive: a peer that stopped
// answering is noticed after about 90 seconds of silence, also while a
// session waits for new mail.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}

// Resolve returns a copy of o (the zero value when o is nil) with the
// defaults filled in: a zero Timeout or DialTimeout becomes the default
// (a negative one stays negative: no bound but the caller's context), a
// nil DialContext a net.Dialer with TCP keep-alive, a nil Logger one that
// discards. The Auth, Security, TLSConfig and Trace fields are kept as
// they are.
func Resolve(o *mailaccess.DialOptions) mailaccess.DialOptions {
	var r mailaccess.DialOptions
	if o != nil {
		r = *o
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.DialContext == nil {
		d := &net.Dialer{KeepAliveConfig: keepAlive}
		r.DialContext = d.DialContext
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// TLSConfig returns the TLS configuration for host: a clone of cfg, or
// when cfg is nil a new one with the system's roots and TLS 1.2 or later;
// its ServerName is host when it was empty.
func TLSConfig(cfg *tls.Config, host string) *tls.Config {
	var c *tls.Config
	if cfg != nil {
		c = cfg.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

// Dial makes the TCP connection to addr with o.DialContext, bounded by
// o.DialTimeout (when positive) and by ctx; o must have been through
// Resolve. A failure is a mailaccess.ErrConnection error of operation
// proto + " connect" whose cause is, in this order: the end of ctx
// (mailerr.ContextErr), a *mailerr.TimeoutError when DialTimeout passed,
// or the dialer's error (with any context error in it hidden: it is the
// dialer's own bound, not the caller's).
func Dial(ctx context.Context, o *mailaccess.DialOptions, proto, addr string) (net.Conn, error) {
	dctx, cancel := ctx, context.CancelFunc(func() {})
	start := time.Now()
	if o.DialTimeout > 0 {
		dctx, cancel = context.WithTimeout(ctx, o.DialTimeout)
	}
	conn, err := o.DialContext(dctx, "tcp", addr)
	cancel()
	if err == nil {
		return conn, nil
	}
	// Which deadline ended the dial is told by the clock, not by the
	// contexts' Err: a socket bounded by a deadline times out before the
	// context's timer marks it done.
	var cause error
	if cerr := mailerr.ContextErr(ctx); cerr != nil {
		cause = cerr
	} else if o.DialTimeout > 0 && time.Since(start) >= o.DialTimeout {
		cause = &mailerr.TimeoutError{After: o.DialTimeout, Err: err}
	} else {
		cause = mailerr.HideContext(err)
	}
	return nil, mailerr.New(proto+" "+mailerr.OpConnect, mailaccess.ErrConnection, "", cause)
}
