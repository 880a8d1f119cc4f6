package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
)

// statusError is the cause attached to errors built from a tagged NO or
// BAD: the status and the response code, without the server's text (which
// is in mailaccess.Error.Text, sanitized).
type statusError struct {
	typ  imap.StatusResponseType
	code imap.ResponseCode
}

func (e *statusError) Error() string {
	if e.code == "" {
		return "imap " + string(e.typ)
	}
	return "imap " + string(e.typ) + " [" + string(e.code) + "]"
}

// timeoutError is the reason recorded when an operation exceeds its bound.
type timeoutError struct {
	op    string
	after time.Duration
}

func (e *timeoutError) Error() string {
	return e.op + ": no answer within " + e.after.String()
}

func (e *timeoutError) Timeout() bool { return true }

// errSessionClosed is returned by calls on a Mailbox after Close or Abort.
var errSessionClosed = errors.New("the session is closed")

// serverError converts a tagged NO or BAD into a *mailaccess.Error of the
// given kind; the server's text is sanitized and scrubbed of secrets.
func (m *Mailbox) serverError(op string, kind error, ie *imap.Error) *mailaccess.Error {
	e := mailerr.New(op, kind, m.scrub(ie.Text), &statusError{typ: ie.Type, code: ie.Code})
	switch ie.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse:
		e.Temporary = true
	}
	return e
}

// classify maps a tagged NO or BAD of an ordinary command to a kind.
func classify(ie *imap.Error) error {
	switch ie.Code {
	case imap.ResponseCodeInUse:
		return mailaccess.ErrInUse
	case imap.ResponseCodeNonExistent:
		return mailaccess.ErrNotFound
	case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed, imap.ResponseCodeExpired:
		return mailaccess.ErrAuth
	case imap.ResponseCodePrivacyRequired:
		return mailaccess.ErrTLS
	}
	if ie.Type == imap.StatusResponseTypeBad {
		return mailaccess.ErrProtocol
	}
	return mailaccess.ErrServer
}

// scrub removes the credentials of this session from a server text, in
// case a server echoes them, and sanitizes it.
func (m *Mailbox) scrub(s string) string {
	for _, secret := range m.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return safetext.Sanitize(s)
}

// fail converts an error returned by the client during operation op into
// a *mailaccess.Error. A tagged NO or BAD becomes kind(ie) and leaves the
// session usable; anything else means the connection is lost: the session
// is marked dead and the error is ErrConnection (Temporary), with the
// cancellation or timeout as the cause when that is what killed it.
func (m *Mailbox) fail(op string, err error, kind func(*imap.Error) error) error {
	if err == nil {
		return nil
	}
	var me *mailaccess.Error
	if errors.As(err, &me) {
		return err
	}
	if reason := m.conn.Reason(); reason != nil {
		return m.connError(op, reason)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		if kind == nil {
			kind = classify
		}
		return m.serverError(op, kind(ie), ie)
	}
	if m.wire != nil && m.wire.failed() == nil {
		// The connection itself did not fail: go-imap gave up on what the
		// server sent (an unknown response, a malformed one), and closed
		// the connection.
		v := &protocolViolation{err: fmt.Errorf("%w: %v", errWire, transportCause(err))}
		m.conn.Kill(v)
		return m.connError(op, m.conn.Reason())
	}
	m.conn.Kill(transportCause(err))
	return m.connError(op, m.conn.Reason())
}

// connError is the error for a lost connection: ErrConnection
// (Temporary), or ErrProtocol when the server broke the protocol (which
// also matches ErrConnection: the session is gone).
func (m *Mailbox) connError(op string, reason error) *mailaccess.Error {
	if isViolation(reason) {
		return m.violationError(op, reason)
	}
	e := mailerr.New(op, mailaccess.ErrConnection, "", reason)
	e.Temporary = true
	return e
}

// transportCause keeps errors that callers may match (EOF, network errors,
// context errors) and turns anything else (go-imap's parse errors, which
// may quote server bytes) into a sanitized copy.
func transportCause(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne):
		return err
	}
	return errors.New(safetext.Sanitize(err.Error()))
}

// kindCause keeps a former kind matchable (errors.Is) when an error is
// recast to another kind.
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

// recast returns err as a *mailaccess.Error of kind, keeping its op, text
// and temporariness; its former kind and cause stay matchable. extra, when
// not nil, is added in front of the cause.
func recast(err error, kind error, extra error) *mailaccess.Error {
	var e *mailaccess.Error
	if !errors.As(err, &e) {
		e = &mailaccess.Error{Kind: mailaccess.ErrConnection, Err: err, Temporary: true}
	}
	var cause error = &kindCause{kind: e.Kind, err: e.Err}
	if extra != nil {
		cause = &kindCause{kind: extra, err: cause}
	}
	return &mailaccess.Error{Op: e.Op, Kind: kind, Text: e.Text, Err: cause, Temporary: e.Temporary}
}
