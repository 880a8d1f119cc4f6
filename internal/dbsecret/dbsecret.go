// Package dbsecret is what mailaccess/sqlstate and fleet share about
// the errors of their databases: the passwords a DSN holds, errors whose
// text has them replaced, and which errors say that the database could
// not be reached or was busy.
package dbsecret

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// Unavailable reports whether err says that the database could not be
// reached, or was too busy, rather than that it refused the request.
func Unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "53300", // too many connections
			"57P01", "57P02", "57P03", // shutting down, crashed, starting
			"40001", "40P01": // serialization failure, deadlock
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == 5 || code == 6 // SQLITE_BUSY, SQLITE_LOCKED
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF)
}

// scrubbed is an error whose text has the secrets replaced.
type scrubbed struct {
	err     error
	secrets []string
}

func (e *scrubbed) Error() string {
	msg := e.err.Error()
	for _, sec := range e.secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	return msg
}

func (e *scrubbed) Unwrap() error { return e.err }

// Scrub returns err with the secrets replaced in its text (err itself
// when there are none); errors.Is and errors.As see through it.
func Scrub(err error, secrets []string) error {
	if len(secrets) == 0 {
		return err
	}
	return &scrubbed{err, secrets}
}

var keywordPassword = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)`)

// Passwords finds the password in a DSN, in either of its forms, even
// when the DSN does not parse, so that no error can show it.
func Passwords(dsn string) []string {
	var out []string
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		}
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		// A URL that does not parse: the text between "user:" and the
		// last "@" of the authority.
		rest := dsn[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			rest = rest[:j]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 && c+1 < at {
				out = append(out, rest[c+1:at])
				if raw, err := url.PathUnescape(rest[c+1 : at]); err == nil && raw != rest[c+1:at] {
					out = append(out, raw)
				}
			}
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
		pw := m[1]
		if strings.HasPrefix(pw, "'") {
			out = append(out, pw)
			pw = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(strings.Trim(pw, "'"))
		}
		if pw != "" {
			out = append(out, pw)
		}
	}
	return out
}
