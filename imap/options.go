package imap

import (
	"github.com/unimail/unimail/internal/dialopt"
	"github.com/unimail/unimail/mailaccess"
)

// Defaults for the zero fields of Options that are IMAP's own.
const (
	// DefaultFolder is the folder opened when Options.Folder is empty.
	DefaultFolder = "INBOX"
	// DefaultChunkSize is the size of the partial fetches of large
	// messages when Options.ChunkSize is zero.
	DefaultChunkSize = 8 << 20
)

// Options configures Dial. A nil *Options is the same as a zero Options:
// implicit TLS with the system's roots, automatic choice of the login
// mechanism, the default timeouts, and the folder INBOX.
//
// The embedded mailaccess.DialOptions are the connection settings that
// every driver shares; this driver reads them as follows.
//
// Auth.Mechanism selects the login:
//   - "" (mailaccess.MechAuto): with a Token, AUTHENTICATE OAUTHBEARER when
//     the server offers it, else XOAUTH2; with a password, AUTHENTICATE
//     PLAIN when the server offers AUTH=PLAIN, else LOGIN (refused with
//     ErrAuth when the server announces LOGINDISABLED);
//   - "LOGIN": the LOGIN command (RFC 3501 section 6.2.3);
//   - "PLAIN": AUTHENTICATE PLAIN (RFC 4616);
//   - "XOAUTH2" or "OAUTHBEARER" (RFC 7628): with Auth.Token.
//
// Any failed AUTHENTICATE closes the connection.
//
// Security: the zero value is implicit TLS (port 993);
// mailaccess.SecurityStartTLS connects in cleartext (port 143) and
// requires STARTTLS, failing with ErrTLS when the server refuses it;
// mailaccess.SecurityInsecureCleartext uses no TLS at all.
//
// Timeout bounds each command: the time until its answer is complete,
// however slowly the server trickles it. Two transfers are bounded
// otherwise, so that large ones are not cut short: a message body streams
// as long as some byte moves within Timeout (a server sending one byte at
// a time can make that last long; the caller's context is the bound on
// the whole), and the listing of List and ListAfter has Timeout without
// progress and twice Timeout plus one millisecond per message in the
// folder in total. A negative Timeout removes all of these bounds: only
// the caller's context (and TCP keep-alive) then ends a call.
//
// Logger: connect (address, TLS mode), login (user, mechanism), select
// (folder, UIDVALIDITY, message count) and each fetched message (UID,
// size, outcome) at Debug; deletions, moves and the commit at Info; errors
// at Warn.
//
// Trace: one line per protocol line, "C: " for what the client sent and
// "S: " for what the server sent (the plaintext inside TLS). Credentials
// never appear in it: the arguments of LOGIN and every line of an
// AUTHENTICATE exchange (the initial response, the server's challenges
// and the client's answers) are replaced by [REDACTED], and the session's
// password and token are replaced wherever else they would appear. The
// contents of literals (message bodies) are replaced by their size.
// Writes are serialized; a failing Trace is ignored.
type Options struct {
	mailaccess.DialOptions

	// Folder is the folder to open, DefaultFolder when empty. It is
	// selected read-write; messages are fetched with BODY.PEEK, which never
	// sets \Seen.
	Folder string

	// ChunkSize is a transfer setting, not a size limit: larger messages,
	// and those whose size was not listed, are fetched in
	// BODY.PEEK[]<offset.size> chunks of this size, which keeps memory
	// flat. DefaultChunkSize when zero; the size limit is
	// mailaccess.Fetcher.MaxSize.
	ChunkSize int64

	// ListDates makes List and ListAfter fill MessageInfo.Date with each
	// message's INTERNALDATE. It is off by default: the Fetcher does not
	// need it, and servers such as Dovecot read every message file for it.
	ListDates bool
}

// withDefaults returns a copy of o with the zero fields filled in: the
// shared ones by dialopt.Resolve, Folder and ChunkSize here.
func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	r.DialOptions = dialopt.Resolve(&r.DialOptions)
	if r.Folder == "" {
		r.Folder = DefaultFolder
	}
	if r.ChunkSize <= 0 {
		r.ChunkSize = DefaultChunkSize
	}
	return r
}
