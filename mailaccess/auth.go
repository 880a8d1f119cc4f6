package mailaccess

import (
	"context"
	"fmt"
	"log/slog"
)

// Authentication mechanisms for Auth.Mechanism.
const (
	// MechAuto picks the best mechanism the server offers: SASL PLAIN
	// when announced, otherwise the protocol's plain login (POP3
	// USER/PASS, IMAP LOGIN). With a Token it picks OAUTHBEARER or XOAUTH2.
	MechAuto = ""
	// MechLogin is POP3 USER/PASS (RFC 1939) or IMAP LOGIN (RFC 3501).
	MechLogin = "LOGIN"
	// MechPlain is SASL PLAIN (RFC 4616) through POP3 AUTH or IMAP
	// AUTHENTICATE.
	MechPlain = "PLAIN"
	// MechAPOP is POP3 APOP (RFC 1939 section 7). It is used only when
	// asked for: its MD5 digest is weak.
	MechAPOP = "APOP"
	// MechXOAuth2 is Google's and Microsoft's SASL XOAUTH2, with Token.
	MechXOAuth2 = "XOAUTH2"
	// MechOAuthBearer is SASL OAUTHBEARER (RFC 7628), with Token.
	MechOAuthBearer = "OAUTHBEARER"
)

// Auth holds credentials. Its String, GoString and LogValue methods never
// show the password or the token, so an Auth can be logged or printed
// safely; the drivers never put a credential into an error or a trace.
type Auth struct {
	// Username is the login name.
	Username string
	// Password is the password, for the LOGIN, PLAIN and APOP mechanisms.
	Password string
	// Mechanism is one of the Mech* constants; MechAuto when empty.
	Mechanism string
	// Token returns an OAuth2 access token for XOAUTH2 or OAUTHBEARER. It
	// is called once per login, so that a refreshed token is used on every
	// new connection.
	Token func(ctx context.Context) (string, error)
}

// Check returns an ErrInvalidArgument error when a field holds CR, LF or NUL.
func (a Auth) Check() error {
	if err := checkArg("username", a.Username); err != nil {
		return err
	}
	if err := checkArg("password", a.Password); err != nil {
		return err
	}
	return checkArg("mechanism", a.Mechanism)
}

// String shows the user and the mechanism, never the secret.
func (a Auth) String() string {
	return fmt.Sprintf("Auth{Username:%q Mechanism:%q Password:%s}", a.Username, a.Mechanism, redacted(a.Password != "" || a.Token != nil))
}

// GoString is String, so that %#v does not show the secret either.
func (a Auth) GoString() string { return a.String() }

// LogValue makes slog print the user and the mechanism only.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", a.Username), slog.String("mechanism", a.Mechanism))
}

func redacted(set bool) string {
	if set {
		return "REDACTED"
	}
	return `""`
}
