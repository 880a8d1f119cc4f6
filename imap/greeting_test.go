package imap

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// peekGreeting turns a BYE greeting into the error go-imap would make of
// it, and leaves every other first line, whole, to go-imap.
func TestPeekGreeting(t *testing.T) {
	for _, c := range []struct {
		in, seen   string
		code, text string
		bye        bool
	}{
		{in: "* OK ready\r\nA1 OK more", seen: "* OK ready\r\n"},
		{in: "* PREAUTH hi\r\n", seen: "* PREAUTH hi\r\n"},
		{in: "* BYE too busy\r\n", seen: "* BYE too busy\r\n", bye: true, text: "too busy"},
		{in: "* bye [UNAVAILABLE] later\r\n", seen: "* bye [UNAVAILABLE] later\r\n", bye: true, code: "UNAVAILABLE", text: "later"},
		{in: "* BYE [] odd\r\n", seen: "* BYE [] odd\r\n", bye: true, text: "odd"},
		{in: "* BYE [ALERT go away\r\n", seen: "* BYE [ALERT go away\r\n", bye: true, text: "[ALERT go away"},
		{in: "* BYE cut", seen: "* BYE cut"}, // a read error: go-imap meets it too
		{in: "garbage\r\n", seen: "garbage\r\n"},
		{in: "* OK cut", seen: "* OK cut"},
		{in: "", seen: ""},
		{in: strings.Repeat("x", maxPreTLSLine+10), seen: strings.Repeat("x", maxPreTLSLine)},
	} {
		seen, err := peekGreeting(strings.NewReader(c.in))
		if string(seen) != c.seen {
			t.Errorf("%q: read %q, want %q", c.in, seen, c.seen)
		}
		var ie *imap.Error
		if errors.As(err, &ie) != c.bye {
			t.Errorf("%q: error %v, BYE expected: %v", c.in, err, c.bye)
			continue
		}
		if c.bye && (ie.Type != imap.StatusResponseTypeBye || string(ie.Code) != c.code || ie.Text != c.text) {
			t.Errorf("%q: %+v, want code %q text %q", c.in, ie, c.code, c.text)
		}
	}
}
