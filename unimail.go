package unimail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
)

// Options configures Dial. A nil *Options means the zero value.
//
// The embedded mailaccess.DialOptions are the connection settings that
// both drivers share, passed to the driver of the URL's scheme, with two
// exceptions: an empty Auth.Username, Auth.Password or Auth.Mechanism
// takes the URL's user, password or ;AUTH= mechanism, and Security is
// ignored: the scheme decides it (see InsecureCleartext). Prefer
// Auth.Password to a password in the URL: URLs end up in logs, shell
// histories and process lists.
type Options struct {
	mailaccess.DialOptions
	// InsecureCleartext makes pop3:// and imap:// URLs run without any
	// TLS, sending the credentials in clear. Only for a server on the same
	// host or in tests. It has no effect on pop3s:// and imaps://.
	InsecureCleartext bool
	// TokenSource, when set, makes Dial log in with an OAuth 2.0 access
	// token from it, through SASL OAUTHBEARER (RFC 7628) or XOAUTH2
	// (Google, Microsoft): the one Auth.Mechanism or the URL's ;AUTH=
	// names, else OAUTHBEARER when the server offers it and XOAUTH2
	// otherwise. Auth.Username (or the URL's user) is the account; a
	// password is never sent, and Auth.Token must be nil.
	//
	// Dial gets a token for every connection, before it connects (so a
	// source that fails costs no connection), and the source decides when
	// to refresh it: oauth2.Config.TokenSource refreshes an expired token
	// with the refresh token. When the server refuses the token, Dial gets
	// a new one at once, past any cache, and logs in once more; a second
	// refusal is mailaccess.ErrAuth. Use a TokenCache (NewTokenCache) and
	// share it between Dials, so that later connections also get the
	// refreshed token; any other source is wrapped in a TokenCache for the
	// one Dial.
	//
	// The source's Token method takes no context: Dial returns when ctx
	// ends, but a source that is stuck goes on in the background. Give it
	// an HTTP client with a timeout (oauth2.HTTPClient in the context of
	// oauth2.Config.TokenSource). A source that fails is
	// mailaccess.ErrConnection when its endpoint could not be reached,
	// mailaccess.ErrUnavailable when the endpoint answered with a
	// temporary failure (5xx, 429, 408), and mailaccess.ErrAuth otherwise
	// (a refused grant). Tokens never appear in errors.
	TokenSource oauth2.TokenSource
}

// Target is a parsed mail URL.
type Target struct {
	// Scheme is "pop3", "pop3s", "imap" or "imaps".
	Scheme string
	// Addr is host:port, with the scheme's default port when the URL has
	// none.
	Addr string
	// Host is the host name without the port.
	Host string
	// User is the decoded user name ("" if the URL has none).
	User string
	// Password is the decoded password of the URL, if it has one.
	Password string
	// Mechanism is the SASL mechanism given as ";AUTH=MECH" after the user
	// (curl's syntax), or "".
	Mechanism string
	// Folder is the IMAP folder ("INBOX" when the path is empty); "" for
	// POP3.
	Folder string
	// Security follows from the scheme: implicit TLS for pop3s and imaps,
	// STLS/STARTTLS required for pop3 and imap.
	Security mailaccess.Security
}

// Protocol returns "pop3" or "imap".
func (t *Target) Protocol() string { return strings.TrimSuffix(t.Scheme, "s") }

// String returns the URL without its password.
func (t *Target) String() string {
	u := url.URL{Scheme: t.Scheme, Host: t.Addr}
	if t.User != "" {
		u.User = url.User(t.User)
	}
	if t.Folder != "" {
		u.Path = "/" + t.Folder
	}
	return u.String()
}

var defaultPorts = map[string]string{"pop3": "110", "pop3s": "995", "imap": "143", "imaps": "993"}

func urlErr(why string) error {
	return mailerr.New("parse URL", mailaccess.ErrInvalidArgument, "", errors.New(why))
}

// escapeHint is added to the errors that a "/", "?", "#" or "@" in the
// user or the password, not percent-escaped, would cause.
const escapeHint = ` (a "/", "?", "#" or "@" in the user or password must be percent-escaped)`

// ParseURL parses a pop3, pop3s, imap or imaps URL. An error matches
// mailaccess.ErrInvalidArgument and says which part is wrong (the scheme,
// user, password, host, port or folder, or an escape in one of them),
// but never repeats a part other than the scheme: the URL may hold a
// password.
func ParseURL(raw string) (*Target, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || !validScheme(scheme) {
		return nil, urlErr("missing scheme: want pop3s://, pop3://, imaps:// or imap://")
	}
	t := &Target{Scheme: strings.ToLower(scheme)}
	port, ok := defaultPorts[t.Scheme]
	if !ok {
		return nil, urlErr(fmt.Sprintf("unknown scheme %q: want pop3s, pop3, imaps or imap", safetext.Sanitize(truncate(scheme, 16))))
	}
	if !strings.HasPrefix(rest, "//") {
		return nil, urlErr("malformed URL: want " + t.Scheme + "://user@host")
	}
	parts, err := splitURL(rest[2:])
	if err != nil {
		return nil, err
	}
	if parts.port != nil {
		switch n, err := strconv.Atoi(*parts.port); {
		case *parts.port == "":
			return nil, urlErr("empty port")
		case err != nil || n < 1 || n > 65535 || !isDigits(*parts.port):
			return nil, urlErr("invalid port: want a number from 1 to 65535" + escapeHint)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// splitURL found no fault in the parts, so it is the host.
		return nil, urlErr("invalid host")
	}
	t.Host = u.Hostname()
	if t.Host == "" {
		return nil, urlErr("missing host")
	}
	if p := u.Port(); p != "" {
		port = p
	}
	t.Addr = net.JoinHostPort(t.Host, port)
	if u.User != nil {
		t.User = u.User.Username()
		t.Password, _ = u.User.Password()
		if user, mech, ok := strings.Cut(t.User, ";"); ok {
			name, val, _ := strings.Cut(mech, "=")
			if !strings.EqualFold(name, "AUTH") || val == "" {
				return nil, urlErr("unknown option after ';' in the user (curl's ;AUTH=MECH is the only one)")
			}
			t.User, t.Mechanism = user, strings.ToUpper(val)
			if t.Mechanism == "*" {
				t.Mechanism = ""
			}
		}
	}
	switch t.Scheme {
	case "pop3s", "imaps":
		t.Security = mailaccess.SecurityTLS
	default:
		t.Security = mailaccess.SecurityStartTLS
	}
	path := strings.TrimPrefix(u.Path, "/")
	if t.Protocol() == "pop3" {
		if path != "" {
			return nil, urlErr("a POP3 URL has no folder")
		}
	} else {
		if path == "" {
			path = "INBOX"
		}
		t.Folder = path
	}
	for _, v := range []struct{ what, s string }{{"user", t.User}, {"password", t.Password}, {"folder", t.Folder}, {"host", t.Host}} {
		if err := mailerr.CheckArg(v.what, v.s); err != nil {
			return nil, mailerr.WithOp("parse URL", err)
		}
	}
	return t, nil
}

// validScheme reports whether s is a URL scheme (RFC 3986 section 3.1).
func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// urlParts are the raw parts of a URL after "scheme://", located as
// net/url locates them.
type urlParts struct {
	user, host, path string
	password, port   *string // nil when absent
}

// splitURL locates the parts of rest (what follows "scheme://") and
// checks each for what net/url would refuse without saying where: a
// control character, an escape that is not %XX, a character that must be
// escaped. It also refuses a query or a fragment. The errors name the
// part, never its value.
func splitURL(rest string) (*urlParts, error) {
	if strings.ContainsAny(rest, "?#") {
		return nil, urlErr("a mail URL takes no query or fragment" + escapeHint)
	}
	var p urlParts
	authority, path, _ := strings.Cut(rest, "/")
	p.path = path
	hostport := authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo := authority[:i]
		hostport = authority[i+1:]
		user, password, hasPassword := strings.Cut(userinfo, ":")
		p.user = user
		if hasPassword {
			p.password = &password
		}
	}
	p.host = hostport
	if strings.HasPrefix(hostport, "[") {
		if i := strings.LastIndex(hostport, "]"); i >= 0 {
			p.host = hostport[:i+1]
			if after := hostport[i+1:]; after != "" {
				if after[0] != ':' {
					return nil, urlErr("invalid host")
				}
				port := after[1:]
				p.port = &port
			}
		}
	} else if i := strings.LastIndex(hostport, ":"); i >= 0 {
		p.host = hostport[:i]
		port := hostport[i+1:]
		p.port = &port
	}
	type part struct {
		part, s  string
		userinfo bool
	}
	check := []part{{"user", p.user, true}}
	if p.password != nil {
		check = append(check, part{"password", *p.password, true})
	}
	check = append(check, part{"host", p.host, false}, part{"folder", p.path, false})
	for _, c := range check {
		if strings.ContainsFunc(c.s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, urlErr("control character in the " + c.part)
		}
		if !validEscapes(c.s) {
			return nil, urlErr("invalid escape in the " + c.part + ": want %XX with two hexadecimal digits")
		}
		if c.userinfo && !validUserinfo(c.s) {
			return nil, urlErr("invalid character in the " + c.part + ": escape it as %XX")
		}
	}
	return &p, nil
}

// validEscapes reports whether every "%" in s starts an escape %XX.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		i += 2
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validUserinfo reports whether s holds only the characters that net/url
// accepts unescaped in a user or password (RFC 3986 section 3.2.1).
func validUserinfo(s string) bool {
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("-._:~!$&'()*+,;=%@", r):
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Dial opens the mailbox that rawURL names (see the package documentation
// for the URL forms) and returns it as a mailaccess.Mailbox. The TLS rules
// are the drivers': implicit TLS for pop3s and imaps, STLS/STARTTLS
// required for pop3 and imap, cleartext only with
// Options.InsecureCleartext. On any error the Mailbox is nil (a nil
// interface, not an interface holding a nil pointer).
func Dial(ctx context.Context, rawURL string, opts *Options) (mailaccess.Mailbox, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return DialTarget(ctx, t, opts)
}

// settings are opts (nil: the defaults) with what the URL t says filled
// in: the credentials that opts leave empty, and the security mode, made
// cleartext only when opts ask for it.
func (t *Target) settings(opts *Options) (o Options, auth mailaccess.Auth, sec mailaccess.Security) {
	if opts != nil {
		o = *opts
	}
	auth = o.Auth
	if auth.Username == "" {
		auth.Username = t.User
	}
	if auth.Password == "" {
		auth.Password = t.Password
	}
	if auth.Mechanism == "" {
		auth.Mechanism = t.Mechanism
	}
	sec = t.Security
	if o.InsecureCleartext && sec == mailaccess.SecurityStartTLS {
		sec = mailaccess.SecurityInsecureCleartext
	}
	return o, auth, sec
}

// DialTarget is Dial for an already parsed URL. On any error the Mailbox
// is nil.
func DialTarget(ctx context.Context, t *Target, opts *Options) (mailaccess.Mailbox, error) {
	o, auth, sec := t.settings(opts)
	dial := func(ctx context.Context, auth mailaccess.Auth) (mailaccess.Mailbox, error) {
		d := o.DialOptions
		d.Auth, d.Security = auth, sec
		// A failed driver Dial returns a nil pointer, which must not
		// become a non-nil interface.
		if t.Protocol() == "pop3" {
			mb, err := pop.Dial(ctx, t.Addr, &pop.Options{DialOptions: d})
			if err != nil {
				return nil, err
			}
			return mb, nil
		}
		mb, err := imap.Dial(ctx, t.Addr, &imap.Options{DialOptions: d, Folder: t.Folder})
		if err != nil {
			return nil, err
		}
		return mb, nil
	}
	if o.TokenSource != nil {
		return dialOAuth(ctx, t.Protocol(), &o, auth, dial)
	}
	return dial(ctx, auth)
}
