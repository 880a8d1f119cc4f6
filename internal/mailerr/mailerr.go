// Package mailerr builds the *mailaccess.Error values that the drivers
// return, so that every driver words the same failure the same way.
package mailerr

import (
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
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
