package pop

import (
	"context"
	"errors"
	"strings"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/mailaccess"
)

// The operations of this driver's errors: "pop3 " and the step's name
// (see internal/mailerr).
const (
	opConnect      = "pop3 " + mailerr.OpConnect
	opGreeting     = "pop3 " + mailerr.OpGreeting
	opCapabilities = "pop3 " + mailerr.OpCapabilities
	opStartTLS     = "pop3 " + mailerr.OpStartTLS
	opTLSHandshake = "pop3 " + mailerr.OpTLSHandshake
	opLogin        = "pop3 " + mailerr.OpLogin
	opList         = "pop3 " + mailerr.OpList
	opFetch        = "pop3 " + mailerr.OpFetch
	opDelete       = "pop3 " + mailerr.OpDelete
	opCommit       = "pop3 " + mailerr.OpCommit
	opLogout       = "pop3 " + mailerr.OpLogout
)

// reply is a parsed -ERR status line.
type reply struct {
	code string // response code (RFC 2449 section 8), upper case, without brackets
	text string // the text after the code
}

// parseErr parses a "-ERR [CODE] text" status line.
func parseErr(line string) reply {
	s := strings.TrimPrefix(line, "-ERR")
	s = strings.TrimPrefix(s, " ")
	var r reply
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			r.code = strings.ToUpper(s[1:i])
			s = strings.TrimLeft(s[i+1:], " ")
		}
	}
	r.text = s
	return r
}

// display is the server text kept in an error: the code in brackets, then
// the text.
func (r reply) display() string { return mailerr.ServerText(r.code, r.text) }

// isSys reports whether the code says the failure is the server's, not the
// user's (RFC 3206 section 5).
func (r reply) isSys() bool {
	return strings.HasPrefix(r.code, "SYS/")
}

// serverErr turns a -ERR reply to a command into an error of kind
// (normally mailaccess.ErrServer), applying the response codes that say
// more (RFC 2449 section 8, RFC 3206): [IN-USE] is mailaccess.ErrInUse;
// [SYS/TEMP] and [LOGIN-DELAY] are mailaccess.ErrUnavailable (retrying
// later may succeed); another [SYS/...] is mailaccess.ErrServer, except at
// login, where a permanent fault still refuses the login (ErrAuth). The
// server's text is the error's Text, and only there.
func serverErr(op string, kind error, r reply) *mailaccess.Error {
	switch {
	case r.code == "IN-USE":
		kind = mailaccess.ErrInUse
	case r.code == "SYS/TEMP", r.code == "LOGIN-DELAY":
		kind = mailaccess.ErrUnavailable
	case r.isSys() && kind != mailaccess.ErrAuth:
		kind = mailaccess.ErrServer
	}
	return mailerr.New(op, kind, r.display(), nil)
}

// asKind returns e with kind as its kind; a former kind other than kind
// becomes its cause, so that it still matches (ErrUnavailable, say, for
// mailaccess.IsTemporary).
func asKind(e *mailaccess.Error, kind error) *mailaccess.Error {
	if e.Kind != kind {
		if e.Err == nil {
			e.Err = e.Kind
		}
		e.Kind = kind
	}
	return e
}

// wireErr classifies a failure of the wire: a line that cannot be sent is
// mailaccess.ErrInvalidArgument, a protocol violation
// mailaccess.ErrProtocol, a failed TLS handshake mailaccess.ErrTLS, and
// anything else (end of stream, reset, timeout, the end of the caller's
// context, whose error popwire puts in the chain) is
// mailaccess.ErrConnection.
func wireErr(op string, err error) *mailaccess.Error {
	var pe *popwire.ProtocolError
	var te *popwire.TLSError
	switch {
	case errors.Is(err, popwire.ErrUnsafeLine):
		return mailerr.New(op, mailaccess.ErrInvalidArgument, "", err)
	case errors.As(err, &pe):
		return mailerr.New(op, mailaccess.ErrProtocol, "", err)
	case errors.As(err, &te):
		return mailerr.New(op, mailaccess.ErrTLS, "", err)
	}
	return mailerr.New(op, mailaccess.ErrConnection, "", err)
}

// ctxErr is the error of a call whose context ended before anything was
// sent: the session is untouched.
func ctxErr(op string, ctx context.Context) *mailaccess.Error {
	return mailerr.New(op, mailaccess.ErrConnection, "", mailerr.ContextErr(ctx))
}

// redactor removes secrets from text that a server sent during login, so
// that a server echoing a credential cannot put it into an error.
type redactor []string

func (r redactor) clean(s string) string {
	for _, secret := range r {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}

// redactedError hides secrets in the message of an underlying error while
// keeping it matchable with errors.Is and errors.As.
type redactedError struct {
	err error
	r   redactor
}

func (e *redactedError) Error() string { return e.r.clean(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }
