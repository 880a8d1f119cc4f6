package pop

import (
	"github.com/unimail/unimail/mailaccess"
)

// Options configures Dial. A nil *Options is the same as a zero Options:
// implicit TLS with the system's roots, automatic choice of the
// authentication mechanism, and the default timeouts.
//
// POP3 has no setting of its own: Options holds the connection settings
// that every driver shares (mailaccess.DialOptions), which this driver
// reads as follows.
//
// Auth.Mechanism selects the login:
//   - "" (mailaccess.MechAuto): with Auth.Token, SASL OAUTHBEARER when the
//     server announces it, XOAUTH2 otherwise; without a token, SASL PLAIN
//     when the server announces it, USER/PASS otherwise;
//   - "LOGIN": USER/PASS (RFC 1939 section 7);
//   - "PLAIN": SASL PLAIN (RFC 4616) through AUTH (RFC 5034);
//   - "APOP": APOP (RFC 1939 section 7), only when asked for: its MD5
//     digest is weak, and it needs a timestamp in the greeting;
//   - "XOAUTH2" or "OAUTHBEARER" (RFC 7628): with Auth.Token.
//
// Security: the zero value is implicit TLS (POP3S, usually port 995);
// mailaccess.SecurityStartTLS connects in cleartext and requires STLS (RFC
// 2595), refusing a server that does not announce it with
// mailaccess.ErrTLS; mailaccess.SecurityInsecureCleartext uses no TLS.
//
// Timeout bounds every read and write in two ways. A message body, and
// every write, fails when the server sends or accepts nothing for Timeout
// (up to 1/16 more), however long the whole transfer takes. Every other
// response (greeting, status line, SASL challenge, listing, TLS
// handshake) must arrive whole within Timeout, plus one more Timeout per
// 64 KiB received, however steadily it trickles in. A negative Timeout
// disables both (the context of each call still applies).
//
// Logger: at Debug, the connection (address, security mode), the login
// (user and mechanism), the listing (message count) and every retrieval
// (UID, listed size, octets read, outcome); at Info, deletion marks, the
// QUIT commit (committed, not committed or unknown) and Abort; at Warn,
// every error a call returns.
//
// Trace: one line per protocol line, "C: " for what the client sent and
// "S: " for what the server sent, and lines starting with "-- " for
// events that are not protocol lines (the TLS handshake). Credentials are
// always redacted, whatever the server does: the argument of PASS, the
// digest of APOP, every line of an AUTH exchange in both directions
// except the AUTH verb and mechanism, +OK and -ERR, and the password and
// token wherever they would appear (a server that echoes them) are shown
// as "[REDACTED]". The body of a message is not shown: a line such as
// "S: [message body, 4096 octets]" stands for it. Control characters are
// escaped. Each line is one Write, from the goroutine that drives the
// session; write errors are ignored. A writer shared by several sessions
// must be safe for concurrent use.
type Options struct {
	mailaccess.DialOptions
}
