// Package mailerr builds the *mailaccess.Error values that the drivers
// return, so that every driver words the same failure the same way: one
// list of operation names (Op), one wording for the server's refusals
// (ServerText), for the end of the caller's context (ContextErr), for the
// library's own timeouts (TimeoutError) and for a connection that the
// server closed (ErrServerClosed).
//
// An error reads "<protocol> <operation>: <kind>: server said "<text>":
// <cause>", for example
//
//	pop3 list: connection failed: context deadline exceeded
//	imap login: authentication failed: server said "[AUTHENTICATIONFAILED] Invalid credentials"
//
// The operation names the step, never the wire command (which may appear
// in the cause); the server's text appears once, in Error.Text.
package mailerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
)

// The operations, the second word of Error.Op ("pop3 list", "imap
// fetch"). Both drivers name the same step with the same word.
const (
	// OpConnect: the TCP connection, and the checks of the address and
	// the options before it.
	OpConnect = "connect"
	// OpGreeting: the server's first line.
	OpGreeting = "greeting"
	// OpCapabilities: CAPA (POP3) or CAPABILITY (IMAP).
	OpCapabilities = "capabilities"
	// OpStartTLS: the upgrade command, STLS (POP3) or STARTTLS (IMAP),
	// and the check that the server offers it.
	OpStartTLS = "STARTTLS"
	// OpTLSHandshake: the TLS handshake, implicit or after STARTTLS.
	OpTLSHandshake = "TLS handshake"
	// OpLogin: the authentication, whatever the mechanism.
	OpLogin = "login"
	// OpSelect: opening the IMAP folder.
	OpSelect = "select"
	// OpList: listing the messages.
	OpList = "list"
	// OpFetch: retrieving a message.
	OpFetch = "fetch"
	// OpDelete: marking messages for deletion.
	OpDelete = "delete"
	// OpMove: moving messages to another folder.
	OpMove = "move"
	// OpCommit: committing the deletions (POP3 QUIT, IMAP UID STORE and
	// UID EXPUNGE).
	OpCommit = "commit"
	// OpIdle: waiting for new mail.
	OpIdle = "idle"
	// OpListFolders: listing the folders of the account.
	OpListFolders = "list folders"
	// OpLogout: ending a session that has nothing to commit.
	OpLogout = "logout"
)

// New returns a *mailaccess.Error; text (the server's words) is
// sanitized with safetext.Sanitize.
func New(op string, kind error, text string, err error) *mailaccess.Error {
	return &mailaccess.Error{Op: op, Kind: kind, Text: safetext.Sanitize(text), Err: err}
}

// CheckArg returns an error that matches mailaccess.ErrInvalidArgument
// when s holds CR, LF or NUL. what names the value in the error (for
// example "username"); s itself is never put into the error.
func CheckArg(what, s string) error {
	if err := safetext.Check(what, s); err != nil {
		return New("", mailaccess.ErrInvalidArgument, "", err)
	}
	return nil
}

// WithOp sets the operation of err when err is a *mailaccess.Error
// without one (such as CheckArg's), and returns err.
func WithOp(op string, err error) error {
	if e, ok := errors.AsType[*mailaccess.Error](err); ok && e.Op == "" {
		e.Op = op
	}
	return err
}

// ServerText is the Error.Text of a refusal: the response code in
// brackets, when there is one, then the server's text, as in
// "[SYS/TEMP] try later" or "[AUTHENTICATIONFAILED] Invalid credentials".
func ServerText(code, text string) string {
	if code == "" {
		return text
	}
	if text == "" {
		return "[" + code + "]"
	}
	return "[" + code + "] " + text
}

// ErrServerClosed is the cause when the server closed the connection in
// the middle of an answer. It matches io.ErrUnexpectedEOF.
var ErrServerClosed = fmt.Errorf("the server closed the connection: %w", io.ErrUnexpectedEOF)

// ContextErr returns the error that says that ctx has ended, or nil while
// it has not: ctx.Err(), so that errors.Is finds context.Canceled or
// context.DeadlineExceeded (and mailaccess.IsTemporary says false), and
// also the cause given to context.WithCancelCause or WithDeadlineCause
// when there is one. A deadline that has passed counts as ended even
// before ctx's timer has marked ctx done (a socket bounded by that
// deadline may time out first): ContextErr then returns
// context.DeadlineExceeded.
func ContextErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
		return &contextError{err: err, cause: cause}
	}
	return err
}

// contextError is the end of a context together with its own cause.
type contextError struct{ err, cause error }

func (e *contextError) Error() string   { return e.err.Error() + ": " + e.cause.Error() }
func (e *contextError) Unwrap() []error { return []error{e.err, e.cause} }

// TimeoutError is the cause when one of the library's own bounds passed
// (DialOptions.Timeout or DialTimeout), as opposed to the caller's
// context: it says "timed out after <bound>" and leaves the lower-level
// error (which names ephemeral ports) out of the text. It is a net.Error
// whose Timeout is true. Its chain never holds a context error, so that
// mailaccess.IsTemporary takes it for the temporary failure it is.
type TimeoutError struct {
	// After is the bound that passed.
	After time.Duration
	// Stall is true when the bound is on progress (no data moved for
	// After), false when it is on a whole answer or step.
	Stall bool
	// Err is the lower-level error, kept for errors.As; nil when there is
	// none.
	Err error
}

// Error returns "timed out after " and the bound.
func (e *TimeoutError) Error() string { return "timed out after " + e.After.String() }

// Timeout reports true.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true, as net.Error asks.
func (e *TimeoutError) Temporary() bool { return true }

// Unwrap returns the lower-level error, unless it holds a context error.
func (e *TimeoutError) Unwrap() error { return HideContext(e.Err) }

// HideContext returns err, or, when err's chain holds context.Canceled or
// context.DeadlineExceeded, an error with the same text whose chain ends
// there. It is for failures that came from a context other than the
// caller's (a dialer's or a token endpoint's own timeout), which must not
// pass for the end of the caller's context: mailaccess.IsTemporary treats
// those as final.
func HideContext(err error) error {
	if err == nil || (!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return errors.New(err.Error())
}

// Recast returns a new error like e (its Op and Text) of kind: e's former
// kind and cause become the cause, which reads "<former kind>: <cause>",
// so that they still match errors.Is (a former
// mailaccess.ErrConnection keeps the error temporary). extra, when not
// nil, is put in front of that cause, to match too (such as
// mailaccess.ErrCopiedNotRemoved). A plain error is taken as a
// mailaccess.ErrConnection error with that cause.
func Recast(err error, kind, extra error) *mailaccess.Error {
	e, ok := errors.AsType[*mailaccess.Error](err)
	if !ok {
		e = &mailaccess.Error{Kind: mailaccess.ErrConnection, Err: err}
	}
	var cause error = &kindCause{kind: e.Kind, err: e.Err}
	if e.Kind == nil {
		cause = e.Err
	}
	if extra != nil {
		cause = &kindCause{kind: extra, err: cause}
	}
	return &mailaccess.Error{Op: e.Op, Kind: kind, Text: e.Text, Err: cause}
}

// kindCause is a former kind and its cause, both matchable.
type kindCause struct {
	kind error
	err  error
}

func (c *kindCause) Error() string {
	if c.err == nil {
		return c.kind.Error()
	}
	return c.kind.Error() + ": " + c.err.Error()
}

func (c *kindCause) Unwrap() []error {
	if c.err == nil {
		return []error{c.kind}
	}
	return []error{c.kind, c.err}
}
