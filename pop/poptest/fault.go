package poptest

import (
	"bufio"
	"errors"
	"strings"
	"time"
)

// Command is one command line as the server read it, given to the fault
// hook and recorded in the log that Server.Commands returns.
type Command struct {
	// Conn is the connection number, from 1, in the order the server
	// accepted (or ServeConn received) the connections.
	Conn int
	// Seq is the command number within the connection, from 1. The fault
	// hook is also called once for the greeting, with Seq 0 and an empty
	// Name; the greeting is not logged.
	Seq int
	// Name is the verb, upper-cased ("RETR").
	Name string
	// Args are the arguments. USER and PASS have one argument, the rest of
	// the line (a password may contain spaces); APOP has the name and the
	// digest; other verbs have the space-separated words. Secrets are
	// redacted: see Server.Commands.
	Args []string
	// User is the logged-in user, or "" before login.
	User string
}

// String returns the command line as logged, such as "RETR 1".
func (c Command) String() string {
	if len(c.Args) == 0 {
		return c.Name
	}
	return c.Name + " " + strings.Join(c.Args, " ")
}

// Fault tells the server how to misbehave for one command; the zero Fault
// handles the command normally. The fields are applied in this order:
// Stall; then Drop; then Err or Reply (Err wins) in place of executing the
// command; then DropAfterExec or DropAfterBytes on the reply, whether it
// came from the command or from Err or Reply.
//
// For the greeting (Command.Seq 0), Err sends "-ERR <Err>" and closes the
// connection, as a server that refuses service does; Reply replaces the
// greeting and the session goes on.
//
// After QUIT the connection is always closed, whatever the reply.
type Fault struct {
	// Drop closes the connection instead of answering; the command is not
	// executed.
	Drop bool
	// DropAfterExec executes the command, then closes the connection
	// without sending the reply. On QUIT this is the ambiguous commit:
	// the deletions are committed, but the client never sees +OK.
	DropAfterExec bool
	// DropAfterBytes, if positive, executes the command, sends only the
	// first DropAfterBytes bytes of the reply (status line included), then
	// closes the connection: a transfer cut in the middle of RETR, say.
	// For AUTH, the "+ " continuation lines are sent normally and only the
	// final reply is cut; likewise for DropAfterExec. For STLS, both close
	// the connection without a TLS handshake.
	DropAfterBytes int
	// Err answers "-ERR <Err>" (plus CRLF) instead of executing the
	// command. It may start with a response code, such as
	// "[SYS/TEMP] try later" or "[IN-USE] locked".
	Err string
	// Stall waits this long, or until the server closes the connection,
	// before handling the command as the other fields say. It simulates a
	// slow or hung server.
	Stall time.Duration
	// Reply sends these raw bytes instead of executing the command, for
	// hostile servers: garbage, a lying LIST, an unterminated multi-line
	// answer, an empty status line. Nothing is added to them.
	Reply string
}

// errCut is the write error after a DropAfterBytes limit was reached.
var errCut = errors.New("poptest: reply cut by fault")

// replyWriter writes one command's reply and applies the fault's
// DropAfterExec and DropAfterBytes to it.
type replyWriter struct {
	w       *bufio.Writer
	discard bool // DropAfterExec: write nothing
	limited bool // DropAfterBytes: write up to left bytes
	left    int
	err     error // sticky: errCut or the connection's write error
}

// reset prepares the writer for the reply to a command with fault f.
func (r *replyWriter) reset(f Fault) {
	r.discard = f.DropAfterExec
	r.limited = f.DropAfterBytes > 0
	r.left = f.DropAfterBytes
	r.err = nil
}

// drops reports whether the connection is closed after this reply.
func (r *replyWriter) drops() bool { return r.discard || r.limited }

func (r *replyWriter) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.discard {
		return len(p), nil
	}
	if r.limited && len(p) >= r.left {
		n, err := r.w.Write(p[:r.left])
		r.left = 0
		if err == nil {
			err = errCut
		}
		r.err = err
		return n, err
	}
	n, err := r.w.Write(p)
	r.left -= n
	if err != nil {
		r.err = err
	}
	return n, err
}

func (r *replyWriter) WriteString(s string) (int, error) { return r.Write([]byte(s)) }
