package pop

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// Default values of Options.
const (
	// DefaultTimeout is the default of Options.Timeout.
	DefaultTimeout = 60 * time.Second
	// DefaultDialTimeout is the default limit on establishing the TCP
	// connection.
	DefaultDialTimeout = 30 * time.Second
)

// Options configures Dial. A nil *Options is the same as a zero Options:
// implicit TLS with the system's roots, automatic choice of the
// authentication mechanism, and the default timeouts.
type Options struct {
	// Auth holds the credentials. Auth.Mechanism selects the login:
	//   - "" (mailaccess.MechAuto): with Auth.Token, SASL OAUTHBEARER when
	//     the server announces it, XOAUTH2 otherwise; without a token, SASL
	//     PLAIN when the server announces it, USER/PASS otherwise;
	//   - "LOGIN": USER/PASS (RFC 1939 section 7);
	//   - "PLAIN": SASL PLAIN (RFC 4616) through AUTH (RFC 5034);
	//   - "APOP": APOP (RFC 1939 section 7), only when asked for: its MD5
	//     digest is weak, and it needs a timestamp in the greeting;
	//   - "XOAUTH2" or "OAUTHBEARER" (RFC 7628): with Auth.Token.
	Auth mailaccess.Auth

	// Security is how the connection is protected. The zero value is
	// implicit TLS (POP3S, usually port 995). mailaccess.SecurityStartTLS
	// connects in cleartext and requires STLS (RFC 2595): a server that
	// does not announce it is refused with mailaccess.ErrTLS.
	// mailaccess.SecurityInsecureCleartext uses no TLS at all.
	Security mailaccess.Security

	// TLSConfig is the TLS client configuration. nil means the system's
	// roots with ServerName set to the host of the address. A given
	// configuration is cloned, and its ServerName filled in when empty.
	TLSConfig *tls.Config

	// Timeout bounds every read and write. A message body, and every
	// write, fails when the server sends or accepts nothing for this long
	// (up to 1/16 more), however long the whole transfer takes. Every
	// other response (greeting, status line, SASL challenge, listing, TLS
	// handshake) must arrive whole within Timeout, plus one more Timeout
	// per 64 KiB received, however steadily it trickles in. Zero means
	// DefaultTimeout; a negative value disables both (the context of each
	// call still applies).
	Timeout time.Duration

	// DialTimeout limits establishing the TCP connection. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration

	// Dialer establishes the connection. nil means a net.Dialer with TCP
	// keep-alive.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxMessageSize is a hard limit in octets on one message: Open refuses
	// with mailaccess.ErrTooLarge, before RETR, a message whose listed size
	// is larger, and fails with mailaccess.ErrProtocol (ending the session)
	// when the server sends more than this while the message streams. Zero
	// means no limit beyond the check against the listed size that Open
	// always makes.
	MaxMessageSize int64

	// Logger receives the session's events; nil means no logging. At
	// Debug: the connection (address, security mode), the login (user and
	// mechanism), the listing (message count) and every retrieval (UID,
	// listed size, octets read, outcome). At Info: deletion marks, the
	// QUIT commit (committed, not committed or unknown) and Abort. At
	// Warn: every error a call returns. No event holds a password, a
	// token or any other credential.
	Logger *slog.Logger

	// Trace receives a trace of the protocol; nil means none. It has one
	// line per protocol line, "C: " for what the client sent and "S: " for
	// what the server sent, and lines starting with "-- " for events that
	// are not protocol lines (the TLS handshake). Credentials are always
	// redacted, whatever the server does: the argument of PASS, the digest
	// of APOP, every line of an AUTH exchange in both directions except
	// the AUTH verb and mechanism, +OK and -ERR, and the password and token
	// wherever they would appear (a server that echoes them) are shown as
	// "[REDACTED]". The body of a message is not shown: a line such as
	// "S: [message body, 4096 octets]" stands for it. Control characters
	// are escaped. Each line is one Write, from the goroutine that drives
	// the session; write errors are ignored. A writer shared by several
	// sessions must be safe for concurrent use.
	Trace io.Writer
}

// resolved returns a copy of o with the defaults filled in.
func (o *Options) resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.DialTimeout <= 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Dialer == nil {
		d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}}
		r.Dialer = d.DialContext
	}
	return r
}

// tlsConfig returns the TLS configuration to use for host.
func (o *Options) tlsConfig(host string) *tls.Config {
	var c *tls.Config
	if o.TLSConfig != nil {
		c = o.TLSConfig.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}
