// Package poptest provides an in-process POP3 server for tests, in the
// spirit of net/http/httptest: a real server on 127.0.0.1 (or on any
// net.Conn, such as one end of net.Pipe), holding in-memory maildrops, with
// a hook that makes it misbehave on chosen commands.
//
// In a test, NewServer (or NewTLSServer for POP3S) starts a server that
// t.Cleanup closes:
//
//	srv := poptest.NewServer(t, nil)
//	srv.AddUser("alice", "secret")
//	srv.AddMessage("alice", []byte("Subject: hi\r\n\r\nHello\r\n"))
//	// dial srv.Addr; use srv.ClientTLSConfig() for STLS
//
// In a program without package testing (a demonstration, a local
// development server), NewUnstartedServer needs no testing.TB; start the
// server yourself and close it:
//
//	srv := poptest.NewUnstartedServer(nil)
//	defer srv.Close()
//	srv.AddUser("alice", "secret")
//	srv.AddMessage("alice", []byte("Subject: hi\r\n\r\nHello\r\n"))
//	srv.Start() // or srv.StartTLS() for POP3S
//	// dial srv.Addr ("127.0.0.1:port"), with srv.ClientTLSConfig() for TLS
//
// It exists so that POP3 clients can be tested quickly and completely:
// every authentication path, byte-exact retrieval, commit and rollback, and
// the failures that are hard to provoke on a real server (a connection
// dropped in the middle of RETR, a QUIT whose +OK never arrives, a stall,
// a temporary failure (-ERR with the SYS/TEMP response code), a lying or
// unterminated answer).
//
// # Protocol
//
// The server speaks RFC 1939 (USER, PASS, APOP, STAT, LIST, UIDL, RETR,
// TOP, DELE, NOOP, RSET, QUIT), RFC 2449 (CAPA; the capabilities TOP, USER,
// SASL, RESP-CODES, LOGIN-DELAY, PIPELINING, EXPIRE, UIDL and
// IMPLEMENTATION; the response codes [IN-USE] and [AUTH] of RFC 2449 and
// RFC 3206), RFC 2595 (STLS), and RFC 5034 (AUTH) with the SASL mechanisms
// PLAIN, XOAUTH2 and OAUTHBEARER (RFC 7628). Config switches capabilities
// off one by one, down to an RFC 1939-only server without CAPA.
//
// A session works as RFC 1939 says: the messages are numbered 1..N at
// login, and messages added later appear only in the next session; DELE
// only marks; the deletions are committed when QUIT is answered +OK, and a
// connection that ends any other way commits nothing. The server locks a
// maildrop for the length of a session: a second login for the same user
// gets -ERR [IN-USE] (see Config.LockWait).
//
// # Byte-exactness
//
// A message is stored as the bytes given to AddMessage and LIST reports
// their exact length. RETR and TOP send those bytes with RFC 1939
// dot-stuffing ("." is put before every line that starts with ".", a line
// ending at LF) and the terminating CRLF "." CRLF. If a message does not
// end with CRLF, the server sends CRLF after it, so that the terminator is
// recognisable: a client then receives the message plus CRLF, two octets
// more than LIST said. An empty message is sent as the terminator alone.
// Line ends are never rewritten: store messages with CRLF, as a real
// maildrop does.
//
// # Deviations from a real server
//
//   - Everything is in memory and nothing persists; UIDLs are counters
//     ("uid-1", "uid-2", ...) unless set with AddMessageUID.
//   - There is no inactivity timer (RFC 1939 section 3 allows one of at
//     least ten minutes): a session lasts until the client leaves or the
//     server closes it.
//   - LOGIN-DELAY and EXPIRE other than 0 are only announced, never
//     enforced.
//   - A login waits for a competing session of the same user to end (one
//     second by default) before it answers [IN-USE], so that a client that
//     drops a connection and reconnects at once does not race the server.
//   - Command lines must end with CRLF: a bare LF, or a CR or NUL inside a
//     line, is answered with -ERR, which catches clients that could be made
//     to inject commands. Lines are limited to MaxLineLength octets, not
//     the 255 of RFC 2449, and an AUTH initial response may be longer than
//     RFC 5034 allows (real servers accept that too).
//   - USER answers +OK for any name; the failure comes at PASS.
//   - No SASL security layer, no channel binding, no CRAM-MD5.
//   - The connection is closed without a TLS close_notify, after QUIT as
//     after a fault.
//   - A server configured with NoCAPA sends no [CODE]s, since it cannot
//     announce RESP-CODES.
//
// # Faults
//
// Config.Fault (or Server.SetFault) is called with each Command before the
// server handles it, and once for the greeting; the Fault it returns can
// drop the connection before or after the command runs, cut the reply
// after some bytes, answer -ERR, stall, or send any raw bytes. Server.Commands
// records what the server read (with secrets redacted), which lets a test
// check pipelining, or that a client aborted without QUIT.
package poptest
