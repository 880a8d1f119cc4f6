// Package imaptest provides an in-process IMAP server for tests, in the
// spirit of net/http/httptest: a real IMAP server on 127.0.0.1 (or on any
// net.Conn, such as one end of net.Pipe) holding in-memory folders, with a
// hook that makes it misbehave on chosen commands.
//
// In a test, NewTLSServer (implicit TLS) or NewServer (cleartext with
// STARTTLS) starts a server that t.Cleanup closes:
//
//	srv := imaptest.NewTLSServer(t, nil)
//	srv.AddUser("alice", "secret")
//	srv.Append("alice", "INBOX", []byte("Subject: hi\r\n\r\nHello\r\n"))
//	// dial srv.Addr with srv.ClientTLSConfig(); afterwards check
//	// srv.Messages, srv.Flags and srv.Commands
//
// In a program without package testing (a demonstration, a local
// development server), NewUnstartedServer needs no testing.TB; start the
// server yourself and close it:
//
//	srv := imaptest.NewUnstartedServer(&imaptest.Config{Logger: log.Default()})
//	defer srv.Close()
//	srv.AddUser("alice", "secret")
//	srv.Append("alice", "INBOX", []byte("Subject: hi\r\n\r\nHello\r\n"))
//	srv.StartTLS() // or srv.Start() for cleartext with STARTTLS
//	// dial srv.Addr ("127.0.0.1:port") with srv.ClientTLSConfig()
//
// Such a server panics on misuse (an unknown user or folder) instead of
// failing a test, and writes its error messages to Config.Logger, or
// nowhere if that is nil.
//
// It exists so that IMAP clients can be tested quickly and completely:
// every authentication path, byte-exact fetching, UID-scoped deletion and
// moves, IDLE, UIDVALIDITY changes, servers that lack MOVE, UIDPLUS or
// IDLE, and the failures that are hard to provoke on a real server (a
// connection dropped in the middle of a message literal, a NO to UID
// EXPUNGE, a stall, a hostile response).
//
// # Protocol
//
// The server is go-imap's imapserver (github.com/emersion/go-imap/v2
// v2.0.0-beta.8) over a copy of its in-memory backend, imapmemserver. It
// speaks IMAP4rev1 (RFC 3501), and IMAP4rev2 (RFC 9051) when
// Config.IMAP4rev2 is set, with STARTTLS, LOGIN, AUTHENTICATE PLAIN (RFC
// 4616) and SASL-IR, XOAUTH2 and OAUTHBEARER (RFC 7628) with Config.Tokens,
// IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), NAMESPACE, ESEARCH,
// SEARCHRES, LIST-EXTENDED, LIST-STATUS, STATUS=SIZE, CHILDREN, SPECIAL-USE,
// CREATE-SPECIAL-USE, UNSELECT, ENABLE, UTF8=ACCEPT, LITERAL+ and LITERAL-.
// Config hides MOVE, UIDPLUS and IDLE one by one, stops offering STARTTLS,
// or forbids authentication before TLS (LOGINDISABLED), to test the paths
// of a client that must degrade or refuse.
//
// A message is stored as the bytes given to Append (or sent with APPEND)
// and BODY[] and BODY.PEEK[] return exactly those bytes, with or without a
// <partial>, and RFC822.SIZE their exact length, whatever they contain:
// line ends are never rewritten, and a message whose header does not parse
// is served as it is. Use CRLF line ends, as a real server stores them.
//
// # TLS
//
// Each server has its own self-signed certificate for 127.0.0.1, ::1 and
// localhost; ClientTLSConfig trusts it (and nothing else), so clients can
// keep certificate verification on. TLS, implicit or after STARTTLS, is
// terminated beneath the fault hook, so the hook sees every command in
// plaintext on every kind of connection. Bytes that a client sends after
// STARTTLS before the handshake go into the handshake, which then fails: a
// plaintext injection is never obeyed.
//
// # Faults
//
// Config.Fault (or Server.SetFault) is called with each command line before
// the server sees it, and once for the greeting; the Fault it returns can
// drop the connection, cut it after some bytes of the answer (in the middle
// of a message literal, say), answer NO or BAD in the server's place, stall,
// or send any raw bytes. Commands are taken one at a time, after the server
// has answered the previous one, so a fault hook sees a pipelining client's
// commands in order. Server.Commands records every command line (with
// credentials redacted), which lets a test check, for instance, that a
// client never sent a plain EXPUNGE, or that it batched its UID FETCHes.
//
// # Deviations from a real server
//
//   - Everything is in memory and nothing persists. UIDVALIDITY is a
//     per-user counter from 1; ResetUIDValidity changes it as a server that
//     rebuilt its index does.
//   - No CONDSTORE, QRESYNC, ID, QUOTA or METADATA. An unknown command,
//     ID included, is answered BAD; before login the server then also
//     sends BYE and closes the connection (imapserver's defence against
//     cross-protocol attacks).
//   - A connection with a folder selected learns of changes made by others
//     (EXISTS, EXPUNGE, FLAGS) during IDLE or at its next command, as
//     RFC 9051 allows; a connection whose folder was deleted and created
//     again (ResetUIDValidity) keeps its view of the old one.
//   - A session that idles with no folder selected gets no updates.
//   - SEARCH, ENVELOPE, BODYSTRUCTURE and the body sections other than the
//     whole message (BODY[HEADER], BODY[1], ...) parse the message with
//     go-message, so on a malformed message they give what go-message
//     makes of it.
//   - imapserver's timers apply: a connection is closed after 30 seconds
//     without a command before login, and 35 minutes after it.
//   - Keywords are lower-cased.
package imaptest
