package pop

import (
	"context"
	"errors"
	"strings"

	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/internal/mailerr"
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
func (r reply) display() string {
	if r.code != "" {
		return "[" + r.code + "] " + r.text
	}
	return r.text
}

// isSys reports whether the code says the failure is the server's, not the
// user's (RFC 3206 section 5).
func (r reply) isSys() bool {
	return r.code == "SYS/TEMP" || r.code == "SYS/PERM" || strings.HasPrefix(r.code, "SYS/")
}

// serverErr turns a -ERR reply to a command into an error of kind
// (normally mailaccess.ErrServer), applying the response codes that say
// more: [IN-USE] is mailaccess.ErrInUse, [SYS/TEMP] and [LOGIN-DELAY] are
// temporary, [SYS/*] is always ErrServer.
func serverErr(op string, kind error, r reply) *mailaccess.Error {
	temp := false
	switch {
	case r.code == "IN-USE":
		kind, temp = mailaccess.ErrInUse, true
	case r.code == "LOGIN-DELAY":
		temp = true
	case r.code == "SYS/TEMP":
		kind, temp = mailaccess.ErrServer, true
	case r.isSys():
		kind = mailaccess.ErrServer
	}
	e := mailerr.New(op, kind, r.display(), nil)
	e.Temporary = temp
	return e
}

// wireErr classifies a failure of the wire: a protocol violation is
// mailaccess.ErrProtocol, a failed TLS handshake mailaccess.ErrTLS, and
// anything else (end of stream, reset, timeout, cancellation) is
// mailaccess.ErrConnection, temporary.
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
	e := mailerr.New(op, mailaccess.ErrConnection, "", err)
	e.Temporary = true
	return e
}

// ctxErr is the error of a call whose context ended before anything was
// sent: the session is untouched.
func ctxErr(op string, ctx context.Context) *mailaccess.Error {
	e := mailerr.New(op, mailaccess.ErrConnection, "", context.Cause(ctx))
	e.Temporary = true
	return e
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
