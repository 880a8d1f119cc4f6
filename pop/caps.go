package pop

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unimail/unimail/internal/safetext"
)

// caps is a parsed CAPA response (RFC 2449 section 5).
type caps struct {
	known bool                // the server answered CAPA with +OK
	lines []string            // the lines as announced, sanitized
	args  map[string][]string // upper-case keyword -> arguments
}

func parseCaps(lines []string) caps {
	c := caps{known: true, args: make(map[string][]string)}
	for _, l := range lines {
		l = safetext.Sanitize(l)
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		c.lines = append(c.lines, l)
		kw := strings.ToUpper(f[0])
		args := f[1:]
		if kw == "SASL" {
			args = slices.DeleteFunc(args, func(m string) bool { return !validMech(m) })
		}
		c.args[kw] = args
	}
	return c
}

// validMech says whether m can be a SASL mechanism name (RFC 4422
// section 3.1: 1 to 20 upper-case letters, digits, hyphens and
// underscores; compared here without regard to case). Others are
// dropped from the SASL capability: no mechanism could be chosen by them.
func validMech(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// has reports whether the keyword was announced.
func (c caps) has(keyword string) bool {
	_, ok := c.args[keyword]
	return ok
}

// sasl reports whether the SASL capability lists mech.
func (c caps) sasl(mech string) bool {
	return slices.ContainsFunc(c.args["SASL"], func(m string) bool { return strings.EqualFold(m, mech) })
}

// loginDelay returns the LOGIN-DELAY the server announced (RFC 2449
// section 6.8: the minimum number of seconds between logins), or 0.
func (c caps) loginDelay() time.Duration {
	a := c.args["LOGIN-DELAY"]
	if len(a) == 0 {
		return 0
	}
	n, err := strconv.ParseUint(a[0], 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// expireZero reports whether the server deletes messages once retrieved:
// "EXPIRE 0" (RFC 2449 section 6.7). After login the value is the user's;
// before login "EXPIRE 0 USER" says that it is 0 for some users, which
// counts as 0 here when the server does not answer CAPA after login
// (assuming otherwise could lose mail under a keep-on-server policy).
func (c caps) expireZero() bool {
	a := c.args["EXPIRE"]
	return len(a) > 0 && a[0] == "0"
}
