package imaptest

import "time"

// Command is one command line as a client sent it, given to the fault hook
// and recorded in the log that Server.Commands returns. Only the first line
// of a command counts: the literals and lines that follow a literal belong
// to the same command, and the client's SASL responses and IDLE's DONE are
// not commands at all.
type Command struct {
	// Conn is the connection number, from 1, in the order the server
	// accepted (or ServeConn received) the connections.
	Conn int
	// Seq is the command number within the connection, from 1. The fault
	// hook is also called once for the greeting, with Seq 0 and an empty
	// Name; the greeting is not logged.
	Seq int
	// Tag is the command's tag, such as "A7".
	Tag string
	// Name is the command name, upper-cased, with the UID prefix where
	// there is one: "LOGIN", "SELECT", "UID FETCH", "UID EXPUNGE", "IDLE".
	Name string
	// Line is the first line of the command without its CRLF, as the
	// client sent it, except that everything after LOGIN and after the
	// mechanism of AUTHENTICATE is replaced by "[redacted]":
	// "A1 LOGIN [redacted]", "A2 AUTHENTICATE PLAIN [redacted]".
	Line string
}

// Fault tells the server how to misbehave for one command; the zero Fault
// passes the command on normally. Stall applies first; then the first of
// Drop, Reply, Bad and No that is set replaces the command, which the
// server then never sees; DropAfterBytes applies when the command is
// passed on.
//
// For the greeting (Command.Seq 0): Drop closes the connection before the
// greeting; Reply replaces the greeting and the session goes on; Bad or No
// sends "* BYE <text>" and closes the connection, as a server that refuses
// service does; DropAfterBytes cuts the greeting.
//
// When a replaced command announced a literal, the client's non-
// synchronizing literal ({n+}) and the rest of the command are swallowed;
// a client that announced a synchronizing literal ({n}) receives the
// answer instead of the "+" it waits for, and sends no literal (RFC 9051
// section 7.5).
type Fault struct {
	// Drop closes the connection instead of passing the command on.
	Drop bool
	// DropAfterBytes, if positive, passes the command on and closes the
	// connection once this many more bytes of server output have been
	// sent, wherever that falls: in a status line, or in the middle of a
	// message literal. The bytes count the protocol stream inside TLS.
	DropAfterBytes int
	// No answers "<tag> NO <No>" instead of passing the command on. It may
	// start with a response code: "[UNAVAILABLE] try later".
	No string
	// Bad answers "<tag> BAD <Bad>" instead of passing the command on.
	Bad string
	// Stall waits this long, or until the connection is closed, before
	// handling the command as the other fields say: a slow or hung server.
	Stall time.Duration
	// Reply sends these raw bytes instead of passing the command on, for
	// hostile servers: an unknown untagged response, a literal that
	// announces 10^12 bytes, a response for another tag. Nothing is added
	// to them, not even a tagged status, so the command stays unanswered
	// unless Reply answers it.
	Reply string
}
