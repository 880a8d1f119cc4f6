package mailaccess

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/unimail/unimail/internal/safetext"
)

// Error kinds. Every error that unimail returns for one of these reasons
// matches the kind with errors.Is; errors.As (or errors.AsType) with
// *Error gives the details.
var (
	// ErrAuth: the server refused the credentials or the mechanism.
	ErrAuth = errors.New("authentication failed")
	// ErrTLS: TLS was required but not offered, or the handshake or the
	// certificate verification failed.
	ErrTLS = errors.New("TLS required or failed")
	// ErrUnsupported: the server or the protocol cannot do what was asked
	// (MoveTo on POP3, KeepOnServer on a server with EXPIRE 0, ...).
	ErrUnsupported = errors.New("unsupported by this server or protocol")
	// ErrTooLarge: a message exceeds the configured size limit.
	ErrTooLarge = errors.New("message too large")
	// ErrNotFound: the message is no longer on the server.
	ErrNotFound = errors.New("message not found")
	// ErrCommitFailed: the server refused to commit the deletions; none
	// of them took effect.
	ErrCommitFailed = errors.New("commit failed")
	// ErrCommitUnknown: the connection failed while committing; the
	// deletions may or may not have taken effect.
	ErrCommitUnknown = errors.New("commit outcome unknown")
	// ErrCopiedNotRemoved is matched, beside ErrCommitFailed or
	// ErrCommitUnknown, by a driver.Mover's error when the messages did reach
	// the target folder but are still in the source folder too (a move
	// done as a copy and a deletion, whose deletion failed). The Fetcher
	// then records the copy (Record.CopiedTo), and its next run removes
	// those messages without copying them a second time.
	ErrCopiedNotRemoved = errors.New("the messages were copied to the target folder but are still in this one")
	// ErrProtocol: the server broke the protocol (garbage, an impossible
	// answer, a line or literal beyond every limit).
	ErrProtocol = errors.New("protocol violation")
	// ErrConnection: the connection failed or timed out; the session is
	// lost.
	ErrConnection = errors.New("connection failed")
	// ErrServer: the server answered -ERR or NO to a command.
	ErrServer = errors.New("server refused the command")
	// ErrInUse: the mail drop is locked by another session (POP3
	// [IN-USE], IMAP [INUSE]). Retrying later may succeed.
	ErrInUse = errors.New("mailbox in use")
	// ErrUnavailable: the server (or the OAuth2 token source) is
	// unavailable for now and said so: POP3 [SYS/TEMP] or [LOGIN-DELAY],
	// IMAP [UNAVAILABLE]. The credentials were not refused; retrying
	// later may succeed.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrInvalidArgument: a value given by the caller cannot be sent (it
	// holds CR, LF or NUL, or is otherwise malformed).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrState: the delivery state could not be read or written.
	ErrState = errors.New("state failure")
	// ErrHandler: the handler refused one or more messages (Fetch's
	// error). Those messages stay on the server and are offered again by
	// the next run.
	ErrHandler = errors.New("handler did not take every message")
)

// Error is the error type of unimail. It carries a kind (one of the Err*
// values above), the operation, the server's own text (control characters
// stripped, never a credential), and the cause.
type Error struct {
	// Op is the operation that failed, such as "pop3 RETR" or "imap login".
	Op string
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// Text is the server's text, sanitized.
	Text string
	// Err is the underlying cause, or nil.
	Err error
}

// newError returns an *Error; text is sanitized.
func newError(op string, kind error, text string, err error) *Error {
	return &Error{Op: op, Kind: kind, Text: safetext.Sanitize(text), Err: err}
}

// Error formats the error as "op: kind: text: cause".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("error")
	}
	if e.Text != "" {
		b.WriteString(": server said ")
		b.WriteString(strconv.Quote(e.Text))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so that errors.Is matches both.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// IsTemporary reports whether retrying later may succeed: err matches
// ErrConnection (the connection failed, or the library's own Timeout
// passed), ErrInUse or ErrUnavailable, and it was not caused by the end of
// the caller's own context. A cancelled context, or a deadline that the
// caller set, is never temporary: retrying it would retry what the caller
// stopped on purpose. This function is the one place that decides it;
// Error.Temporary, Fetcher.Run and the fleet use it.
func IsTemporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, ErrConnection) || errors.Is(err, ErrInUse) || errors.Is(err, ErrUnavailable)
}

// Temporary reports IsTemporary(e).
func (e *Error) Temporary() bool { return IsTemporary(e) }

// checkArg returns an ErrInvalidArgument error when s holds CR, LF or
// NUL; what names the value, s is never put into the error.
func checkArg(what, s string) error {
	if err := safetext.Check(what, s); err != nil {
		return newError("", ErrInvalidArgument, "", err)
	}
	return nil
}
