package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
)

// The operations of this driver's errors: "imap " and the step's name
// (see internal/mailerr).
const (
	opConnect      = "imap " + mailerr.OpConnect
	opGreeting     = "imap " + mailerr.OpGreeting
	opCapabilities = "imap " + mailerr.OpCapabilities
	opStartTLS     = "imap " + mailerr.OpStartTLS
	opTLSHandshake = "imap " + mailerr.OpTLSHandshake
	opLogin        = "imap " + mailerr.OpLogin
	opSelect       = "imap " + mailerr.OpSelect
	opList         = "imap " + mailerr.OpList
	opFetch        = "imap " + mailerr.OpFetch
	opDelete       = "imap " + mailerr.OpDelete
	opMove         = "imap " + mailerr.OpMove
	opCommit       = "imap " + mailerr.OpCommit
	opIdle         = "imap " + mailerr.OpIdle
	opListFolders  = "imap " + mailerr.OpListFolders
	opLogout       = "imap " + mailerr.OpLogout
)

// errSessionClosed is returned by calls on a Mailbox after Close or Abort.
var errSessionClosed = errors.New("the session is closed")

// serverError converts a tagged NO or BAD into a *mailaccess.Error of the
// given kind. The server's text, with its response code in front
// ("[UNAVAILABLE] try later"), sanitized and scrubbed of secrets, is the
// error's Text, and only there.
func (m *Mailbox) serverError(op string, kind error, ie *imap.Error) *mailaccess.Error {
	return mailerr.New(op, kind, m.scrub(mailerr.ServerText(string(ie.Code), ie.Text)), nil)
}

// classify maps a tagged NO or BAD of an ordinary command to a kind.
func classify(ie *imap.Error) error {
	switch ie.Code {
	case imap.ResponseCodeInUse:
		return mailaccess.ErrInUse
	case imap.ResponseCodeUnavailable:
		return mailaccess.ErrUnavailable
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
// is marked dead and the error is ErrConnection, with the end of the
// caller's context or the library's timeout as the cause when that is
// what killed it.
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

// connError is the error for a lost connection: ErrConnection, or
// ErrProtocol when the server broke the protocol (which also matches
// ErrConnection: the session is gone).
func (m *Mailbox) connError(op string, reason error) *mailaccess.Error {
	if isViolation(reason) {
		return m.violationError(op, reason)
	}
	return mailerr.New(op, mailaccess.ErrConnection, "", reason)
}

// ctxError is the error of a call whose context had ended before it
// began: ErrConnection with the context's error; the session is untouched.
func ctxError(op string, ctx context.Context) *mailaccess.Error {
	return mailerr.New(op, mailaccess.ErrConnection, "", mailerr.ContextErr(ctx))
}

// transportCause keeps errors that callers may match (network errors,
// context errors) and turns the end of the stream into
// mailerr.ErrServerClosed and anything else (go-imap's parse errors,
// which may quote server bytes) into a sanitized copy.
func transportCause(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return mailerr.ErrServerClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne):
		return err
	}
	return errors.New(safetext.Sanitize(err.Error()))
}
