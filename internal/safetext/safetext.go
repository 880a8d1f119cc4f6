// Package safetext makes text from a server safe to show, and checks that
// a value bound for the wire holds no line break.
package safetext

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest text, in bytes, that Sanitize keeps.
const MaxLen = 256

// Sanitize makes a server's text safe to show: control characters (CR,
// LF, NUL, escape sequences, ...) become spaces, invalid UTF-8 is
// replaced, and the result is cut to MaxLen bytes on a rune boundary.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		cut := MaxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Check returns an error naming what when s holds CR, LF or NUL, which
// must never reach the wire. s itself is never put into the error.
func Check(what, s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return errors.New(what + " contains CR, LF or NUL")
	}
	return nil
}
