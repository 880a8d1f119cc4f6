// Package pop is the POP3 driver of unimail: Dial returns a *Mailbox, one
// POP3 session that implements mailaccess.Mailbox and
// driver.Describer.
//
// # POP3 semantics in this driver
//
// A POP3 session locks the mail drop, lists it, retrieves messages and
// marks some for deletion (RFC 1939). The marks are only marks: the server
// deletes the messages when the session ends with QUIT answered +OK (the
// UPDATE state, RFC 1939 section 6). So:
//
//   - Delete sends DELE, which only marks;
//   - Close sends QUIT: nil means the deletions are committed;
//     mailaccess.ErrCommitFailed means the server refused them (nothing was
//     deleted); mailaccess.ErrCommitUnknown means the connection failed after
//     QUIT was sent, so they may or may not have been deleted;
//   - Abort closes the connection without QUIT: the server rolls every mark
//     back.
//
// UIDs are the server's UIDL values, stable across sessions. A server
// without UIDL has only message numbers: the UIDs are then "#1", "#2", ...,
// valid in this session only, and Describe reports SessionUIDs. A server
// that announces "EXPIRE 0" deletes what is retrieved whatever the client
// does; Describe reports DeletesOnRetrieval. The retention policy itself
// (what to delete, and when) is mailaccess.Fetcher's job: this package
// speaks POP3 and nothing else.
//
// # Security
//
// The zero Options mean implicit TLS (POP3S) with the certificate verified
// against the system's roots. mailaccess.SecurityStartTLS requires STLS
// (RFC 2595): a server that does not offer it is refused, never used in
// cleartext, and bytes that the server sends between its STLS answer and
// the handshake are refused too (they would be injected into the TLS
// session). Cleartext needs the explicit mailaccess.SecurityInsecureCleartext.
// Every value that goes onto the wire (user, password, mechanism, UIDs) is
// checked for CR, LF and NUL first, and no credential ever appears in an
// error.
//
// # Deadlines and failures
//
// Every call takes a context and is also bounded by Options.Timeout, in
// two ways. A message body has an idle deadline: it fails when the server
// sends nothing for Timeout (up to 1/16 more), so a long transfer that
// keeps moving is never cut. Everything else (the greeting, every status
// line, a SASL challenge, the CAPA, UIDL and LIST listings, the TLS
// handshake) is a control response with an overall deadline: it must
// arrive whole within Timeout, plus one more Timeout per 64 KiB received
// (a listing of many MiB may take longer), so that a server that trickles
// a byte now and then cannot hold a call forever. Writes have the idle
// deadline. A negative Timeout removes both bounds, leaving the context
// alone. Cancelling the context interrupts a blocked read or write at
// once. A dropped or timed-out connection is mailaccess.ErrConnection
// (temporary; the cause of a timeout is a net.Error whose Timeout is true
// and that reads "timed out after <Timeout>"), and so is the end of the
// caller's context, whose error the chain then holds (and which is never
// temporary); the session is then over: every later call fails at once,
// and Close reports that nothing was committed. A -ERR answer is
// mailaccess.ErrServer (or a more precise kind, such as
// mailaccess.ErrNotFound from Open, or mailaccess.ErrUnavailable for
// [SYS/TEMP]), with the server's text in Error.Text, and the session goes
// on. A server that breaks the protocol (garbage instead of +OK or -ERR,
// a line that never ends, a listing with duplicate UIDs or malformed
// lines, a message much longer than announced) is mailaccess.ErrProtocol.
// Every error's operation is "pop3 " and the step: connect, greeting,
// capabilities, STARTTLS, TLS handshake, login, list, fetch, delete,
// commit, logout.
//
// # Memory
//
// Open streams the message from the connection: at most one read buffer
// (32 KiB) is held, whatever the size of the message, and at most one
// message is open at a time. A message is cut off, and the session ended,
// when the server sends more than twice the size it announced in LIST
// plus 64 KiB. (A server that announces a huge size can therefore stream
// up to twice that; the size limit is mailaccess.Fetcher's MaxSize, which
// skips a message announced larger and stops one that streams past it.
// Memory stays flat either way.) The listing (UIDL and LIST) is held in
// memory, bounded at 64 MiB per response.
//
// Measured on Linux: fetching one 100 MiB message from Dovecot through
// mailaccess.Fetcher, with a handler that discards it, peaks at 10.8 MiB
// of resident memory for the whole process (0.11 times the message;
// 9.3 MiB before the fetch):
//
//	UNIMAIL_POP_RSS=1 go test ./pop -run PeakRSS -v
//
// # Observability
//
// Options.Logger receives the session's events through log/slog (the
// connection, the login, the listing and each retrieval at Debug; deletion
// marks, the QUIT commit and Abort at Info; every error at Warn).
// Options.Trace receives a wire trace, one line per protocol line ("C: "
// and "S: "), in which credentials are always redacted (the argument of
// PASS, the APOP digest, every line of an AUTH exchange, and the password
// and token wherever they would appear) and message bodies are replaced by
// their octet count. Neither ever holds a credential, and neither do the
// errors.
//
// # Pipelining
//
// On a server that announces PIPELINING (RFC 2449 section 6.6), a batch of
// commands (the DELEs of one Delete call, UIDL and LIST) leaves in one
// write, sent from a second goroutine while the answers are read: one
// round trip for any number of commands, and no deadlock when both
// directions fill their buffers. A caller that knows which messages it is
// going to open, in which order, says so with Mailbox.WillOpen (the
// Fetcher does): Open then keeps RETRs in flight ahead of the reader, so
// that fetching many small messages costs one round trip per batch rather
// than one per message.
//
// BenchmarkFetch2000 compares, in one run, mailaccess.Fetcher over this
// driver (2000 messages of 4 KiB on Dovecot over POP3S, KeepOnServer, no
// state, a handler that discards) with a raw client that sends every RETR
// in one write and discards what comes back, and reports the ratios of
// the median times for the Fetcher and for the driver alone (the driver
// also asks CAPA after login and lists UIDL and LIST, which the raw client
// skips; the Fetcher also fingerprints every message):
//
//	go test ./pop -run '^$' -bench 'Fetch2000$' -benchtime 30x
//
// # go-pop3
//
// The commands go through github.com/knadh/go-pop3, which is used
// unmodified on top of a connection that this package prepares: Dial
// connects, secures, reads the greeting, asks CAPA, runs STLS and logs in
// (USER/PASS, APOP, or SASL PLAIN, XOAUTH2 and OAUTHBEARER through
// github.com/emersion/go-sasl) before go-pop3 sees the connection, and
// the connection under go-pop3 hands it one line at a time, checks every
// status line, and bounds every response. go-pop3 sends the commands and
// reads the status lines; the bodies of multi-line answers are read by
// this package: messages are streamed (go-pop3 would buffer them whole and
// rewrite their line ends), and listings are read in one buffer (go-pop3
// would copy them line by line).
package pop
