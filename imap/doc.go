// Package imap is the IMAP driver of unimail: a mailaccess.Mailbox on one
// IMAP folder, built on go-imap v2's client (imapclient).
//
//	mb, err := imap.Dial(ctx, "mail.example.com:993", &imap.Options{
//		DialOptions: mailaccess.DialOptions{
//			Auth: mailaccess.Auth{Username: "alice", Password: pw},
//		},
//	})
//
// The Mailbox also implements driver.Mover (UID MOVE),
// driver.Folders (LIST), driver.Watcher (IDLE),
// driver.Describer, driver.Prefetcher (batched fetches),
// driver.AfterLister and driver.WindowLister (incremental listing, a
// window of UIDs at a time).
//
// DialAccount opens a session with the whole account instead: Account.Folders
// lists the folders (LIST, with the RFC 6154 special-use attributes, the names
// decoded from modified UTF-7) and Account.Open selects them one after the
// other on the same connection, each a Mailbox as above
// (mailaccess.Fetcher.FetchAccount drives it).
//
// # IMAP semantics in this driver
//
// UIDs are scoped by UIDVALIDITY. A message's mailaccess.UID is
// "UIDVALIDITY/UID" (for example "1700000000/42"). When the server changes
// the folder's UIDVALIDITY (RFC 3501 section 2.3.1.1), every UID of the
// old epoch names no message any more: Open gives ErrNotFound, Delete and
// Move ignore them, and Describe().UIDEpoch changes, so that the caller
// treats every message as new rather than silently as the same.
//
// Deletion is by UID only. Delete keeps its marks in this process; nothing
// is sent until Close, which flags exactly the marked messages with
// UID STORE +FLAGS.SILENT (\Deleted) and removes exactly those with
// UID EXPUNGE (RFC 4315, UIDPLUS). A plain EXPUNGE or CLOSE, which would
// also remove messages that another client flagged \Deleted, is never sent.
// Without UIDPLUS the messages are flagged but stay, and Close says so with
// ErrUnsupported. Abort closes the connection at once and the marks are
// gone with it: since they never reached the server, the rollback is exact.
// Move uses UID MOVE (RFC 6851), or UID COPY + UID STORE + UID EXPUNGE, and
// takes effect at once; when that deletion fails after the copy, the error
// matches mailaccess.ErrCopiedNotRemoved, so that a Fetcher's next run
// deletes without copying again.
//
// Reading never changes flags: messages are fetched with BODY.PEEK[],
// streamed from the socket as the caller reads, large ones in
// BODY.PEEK[]<offset.size> chunks (Options.ChunkSize) so that memory stays
// flat and no single literal runs into go-imap's 5-minute literal deadline.
// After each UID FETCH the driver checks that the UID it asked for came
// back: no data means the message was expunged (ErrNotFound), but data it
// cannot match is ErrProtocol, never "gone".
//
// Message bytes are delivered as the server sends them. IMAP cannot carry
// a NUL octet in BODY[] (RFC 3501 section 4.3): a server holding a
// message with NULs must change them, and Dovecot, for one, sends 0x80
// instead. Such a message does not come back byte for byte, and POP3 may
// give other bytes for it than IMAP.
//
// # Batched fetching
//
// WillOpen (driver.Prefetcher, which mailaccess.Fetcher calls with
// the messages it is about to open) makes the following Open calls come
// from batched UID FETCH <set> (UID BODY.PEEK[]) commands, each for a
// window of up to 10,000 announced messages, 256 runs of consecutive UIDs
// (so that the command line stays short) or 256 MiB of listed size,
// instead of one command and one round trip per message. The messages still
// stream from the socket one at a time as the caller reads; messages
// larger than Options.ChunkSize are not batched but fetched in chunks at
// their Open. One window is in flight at a time: go-imap reads the answers
// of one command at a time, and a server may send a FETCH's tagged status
// after the data of the FETCH pipelined behind it (Dovecot does), so a
// second window sent ahead could leave go-imap waiting behind a message
// nobody reads. Announced messages that are not opened are read past and
// discarded; any other command first reads the window in flight to its
// end. Every body is checked against the size the server announced for
// it, on every path (Read, Close, Abort, cancellation, a dropped
// connection), so a cut message is an error, never a complete one.
//
// go-imap reads the connection in a goroutine of its own and hands each
// message over to the caller's goroutine and back. On a small machine
// whose other CPUs are busy (with the mail server, say), those hand-overs
// wake idle threads, and a drain of many small messages takes longer than
// in a process with GOMAXPROCS=1 (BENCHMARKS.md has the figures). A program that does little else may run with
// GOMAXPROCS=1, as examples/retrieve does.
//
// # Incremental listing
//
// ListAfter (driver.AfterLister) lists only the messages after a
// given UID. When SELECT's UIDNEXT (and no new message reported since)
// shows that nothing came after it, no command is sent at all: a run that
// finds no new mail costs the round trips of Dial and Close, however large
// the folder. Otherwise it sends UID FETCH <uid+1>:*. Count gives the
// number of messages in the folder as the server last reported it.
//
// # Logs and trace
//
// Options.Logger receives the session's events (connect, login, select
// and each message at Debug; deletions, moves and the commit at Info;
// errors at Warn). Options.Trace receives the protocol, one line per
// protocol line prefixed "C: " or "S: ", with the arguments of LOGIN and
// every line of an AUTHENTICATE exchange replaced by [REDACTED] and the
// contents of literals replaced by their size:
//
//	C: T2 LOGIN "alice" [REDACTED]
//	S: T2 OK Logged in
//	C: T6 UID FETCH 1:3 (UID BODY.PEEK[])
//	S: * 1 FETCH (UID 1 BODY[] {3032}
//	S: [3032 octets]
//	S: )
//
// Neither ever holds the password or the token. (go-imap's own
// DebugWriter shows everything raw and is not used.) STARTTLS is sent by
// the driver itself, before go-imap takes over the TLS connection, so
// that the trace shows the plaintext on both sides of it.
//
// # Deadlines and cancellation
//
// go-imap has no context. Every method here takes one, and bounds each
// command by Options.Timeout too: when either ends, the connection is
// closed under go-imap, which fails the pending command; any message
// literal in flight is drained or made to fail, so nothing hangs. After
// that the session is dead: later calls fail at once with ErrConnection,
// and the caller should Abort and dial again.
//
// Control responses (greeting, status lines, the parts of a FETCH
// response around its literal) must be complete within Options.Timeout,
// however slowly the server trickles them. Message bodies, and the
// listing of List and ListAfter, are bounded by progress instead (see
// Options.Timeout), so that large transfers over slow links are not cut
// short; the caller's context bounds them in total. go-imap's own fixed
// deadlines (30 seconds for a response, 5 minutes for a literal) are
// replaced by these: a message that waits in a window while the caller is
// busy is never cut.
//
// What the server sends outside message bodies is bounded: a response
// longer than 4 MiB, or a literal other than a body larger than 1 MiB
// (go-imap would hold either in memory), ends the session with
// ErrProtocol at once. So do a greeting that is not IMAP and a response
// that go-imap cannot parse, such as an unknown untagged response (go-imap
// closes the connection on it). These errors also match ErrConnection:
// the session is gone.
//
// # Errors
//
// Every error for a known reason is a *mailaccess.Error whose operation is
// "imap " and the step (connect, greeting, STARTTLS, TLS handshake, login,
// select, list, fetch, delete, move, commit, idle, list folders): ErrAuth
// (login refused), ErrTLS (handshake, certificate, STARTTLS missing),
// ErrNotFound (the folder at Dial, a message at Open), ErrInUse ([INUSE]),
// ErrUnavailable ([UNAVAILABLE]), ErrServer (another NO), with the
// server's sanitized text and response code in Error.Text, ErrProtocol
// (the server broke the protocol: the session is gone), ErrConnection
// (the connection failed, Options.Timeout passed, or the caller's context
// ended, whose error the chain then holds), ErrCommitFailed and
// ErrCommitUnknown (Close and Move), ErrUnsupported, ErrInvalidArgument
// (CR, LF or NUL in a user name, password or folder name, refused before
// anything is sent). mailaccess.IsTemporary tells which are worth a retry.
// No error holds a password or a token.
package imap
