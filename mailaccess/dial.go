package mailaccess

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"time"
)

// DialOptions are the connection settings that every driver shares:
// pop.Options and imap.Options embed them, and unimail.Options carries
// them for both. The zero value connects with implicit TLS, the system's
// certificate roots, the automatic choice of login mechanism and the
// default timeouts.
type DialOptions struct {
	// Auth holds the credentials and the login mechanism.
	Auth Auth
	// Security says how the connection is protected; the zero value is
	// implicit TLS.
	Security Security
	// TLSConfig replaces the default TLS configuration (the system's
	// roots, TLS 1.2 or later). It is cloned, and its ServerName is
	// filled in from the address when empty.
	TLSConfig *tls.Config
	// Timeout bounds each network operation of the session: a command's
	// answer must arrive whole within it, and a message body must keep
	// moving (some byte every Timeout) however long the whole transfer
	// takes. Zero means one minute; a negative value means no bound but
	// the caller's context.
	Timeout time.Duration
	// DialTimeout bounds establishing the TCP connection. Zero means 30
	// seconds; a negative value means no bound but the caller's context.
	DialTimeout time.Duration
	// DialContext makes the TCP connection (proxies, tests). nil means a
	// net.Dialer with TCP keep-alive, so that a dead peer is noticed
	// while the session waits for new mail.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the session's events (connect, login, listing,
	// each message, deletions, commit); nil means none. No event holds a
	// credential.
	Logger *slog.Logger
	// Trace receives the protocol, one line per protocol line prefixed
	// "C: " or "S: "; nil means none. Credentials are always redacted and
	// message bodies shown as their size.
	Trace io.Writer
}

// Security says how a driver protects its connection. The zero value is
// implicit TLS.
type Security int

const (
	// SecurityTLS is implicit TLS from the first byte (POP3S on 995, IMAPS
	// on 993). Certificates are verified unless the caller passes its own
	// tls.Config that says otherwise.
	SecurityTLS Security = iota
	// SecurityStartTLS connects in cleartext and upgrades with STLS (POP3,
	// RFC 2595) or STARTTLS (IMAP, RFC 3501). The upgrade is required: a
	// server that does not offer it is refused with ErrTLS, never used in
	// cleartext.
	SecurityStartTLS
	// SecurityInsecureCleartext uses no TLS at all: credentials and mail
	// cross the network readable by anyone on the path. Use it only for a
	// server on the same host or in tests.
	SecurityInsecureCleartext
)

// String returns "tls", "starttls" or "insecure-cleartext".
func (s Security) String() string {
	switch s {
	case SecurityTLS:
		return "tls"
	case SecurityStartTLS:
		return "starttls"
	case SecurityInsecureCleartext:
		return "insecure-cleartext"
	}
	return "Security(?)"
}
