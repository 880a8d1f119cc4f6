package unimail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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

// ParseURL parses a pop3, pop3s, imap or imaps URL. The error never
// repeats the URL, which may hold a password.
func ParseURL(raw string) (*Target, error) {
	if strings.ContainsAny(raw, "\r\n\x00") {
		return nil, urlErr("URL contains CR, LF or NUL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, urlErr("malformed URL")
	}
	t := &Target{Scheme: strings.ToLower(u.Scheme)}
	port, ok := defaultPorts[t.Scheme]
	if !ok {
		if u.Scheme == "" {
			return nil, urlErr("missing scheme: want pop3s://, pop3://, imaps:// or imap://")
		}
		return nil, urlErr(fmt.Sprintf("unknown scheme %q: want pop3s, pop3, imaps or imap", safetext.Sanitize(truncate(u.Scheme, 16))))
	}
	if u.Opaque != "" {
		return nil, urlErr("malformed URL: want scheme://user@host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, urlErr("a mail URL takes no query or fragment")
	}
	t.Host = u.Hostname()
	if t.Host == "" {
		return nil, urlErr("missing host")
	}
	if p := u.Port(); p != "" {
		port = p
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, urlErr("empty port")
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
			return nil, err
		}
	}
	return t, nil
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

// DialTarget is Dial for an already parsed URL. On any error the Mailbox
// is nil.
func DialTarget(ctx context.Context, t *Target, opts *Options) (mailaccess.Mailbox, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	auth := o.Auth
	if auth.Username == "" {
		auth.Username = t.User
	}
	if auth.Password == "" {
		auth.Password = t.Password
	}
	if auth.Mechanism == "" {
		auth.Mechanism = t.Mechanism
	}
	sec := t.Security
	if o.InsecureCleartext && sec == mailaccess.SecurityStartTLS {
		sec = mailaccess.SecurityInsecureCleartext
	}
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
		return dialOAuth(ctx, &o, auth, dial)
	}
	return dial(ctx, auth)
}
