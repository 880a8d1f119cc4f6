// Package imap is the IMAP driver of unimail: a mailaccess.Mailbox on one
// IMAP folder, built on go-imap v2's client (imapclient).
//
//	mb, err := imap.Dial(ctx, "mail.example.com:993", &imap.Options{
//		Auth: mailaccess.Auth{Username: "alice", Password: pw},
//	})
//
// The Mailbox also implements mailaccess.Mover (UID MOVE),
// mailaccess.Folders (LIST), mailaccess.Watcher (IDLE) and
// mailaccess.Describer.
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
// takes effect at once.
//
// Reading never changes flags: messages are fetched with BODY.PEEK[],
// streamed from the socket as the caller reads, large ones in
// BODY.PEEK[]<offset.size> chunks (Options.ChunkSize) so that memory stays
// flat and no single literal runs into go-imap's 5-minute literal deadline.
// After each UID FETCH the driver checks that the UID it asked for came
// back: no data means the message was expunged (ErrNotFound), but data it
// cannot match is ErrProtocol, never "gone".
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
// # Errors
//
// Every error for a known reason is a *mailaccess.Error: ErrAuth (login
// refused), ErrTLS (handshake, certificate, STARTTLS missing), ErrNotFound
// (the folder at Dial, a message at Open), ErrInUse, ErrServer (a NO, with
// the server's sanitized text; Temporary for [UNAVAILABLE] and [INUSE]),
// ErrProtocol, ErrConnection (Temporary), ErrCommitFailed and
// ErrCommitUnknown (Close and Move), ErrUnsupported, ErrInvalidArgument (CR,
// LF or NUL in a user name, password or folder name, refused before
// anything is sent). No error holds a password or a token.
package imap
