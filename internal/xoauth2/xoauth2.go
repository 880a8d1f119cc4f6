// Package xoauth2 is the client side of the SASL mechanism XOAUTH2 of
// Google and Microsoft (https://developers.google.com/gmail/imap/xoauth2-protocol),
// as a github.com/emersion/go-sasl Client, which go-sasl does not ship.
//
// The client sends one initial response,
//
//	"user=" USER ^A "auth=Bearer " TOKEN ^A ^A
//
// and the server either accepts it (OK, +OK) or sends one challenge: a
// base64 JSON document such as {"status":"401","schemes":"bearer",
// "scope":"https://mail.google.com/"} (Gmail says "400" for an expired
// token). The client answers that challenge with an empty response, after
// which the server ends the exchange with NO or -ERR. The client keeps the
// document (Client.Failure), so that the caller can tell a token that is
// expired or revoked (Failure.InvalidToken, where a refreshed token may
// succeed) from other refusals.
package xoauth2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/emersion/go-sasl"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
)

// Mechanism is the SASL name of the mechanism.
const Mechanism = "XOAUTH2"

// ErrInvalidCredentials is returned by Client.Start when the user name or
// the token cannot be carried by XOAUTH2: one of them is empty or holds ^A
// (the field separator), CR, LF or NUL. The error never holds the token.
var ErrInvalidCredentials = errors.New("xoauth2: user name or token is empty or holds ^A, CR, LF or NUL")

// Client is a sasl.Client for XOAUTH2. A Client is for one exchange; it is
// not safe for concurrent use.
type Client struct {
	user, token string
	failure     *Failure
}

var _ sasl.Client = (*Client)(nil)

// NewClient returns a client that logs in as user with the OAuth 2.0 bearer
// token. The values are checked by Start, which sends nothing when they are
// invalid.
func NewClient(user, token string) *Client {
	return &Client{user: user, token: token}
}

// Start returns the mechanism name and the initial response. It returns
// ErrInvalidCredentials, and no response, when the user or the token is
// empty or holds ^A, CR, LF or NUL.
func (c *Client) Start() (mech string, ir []byte, err error) {
	if c.user == "" || c.token == "" || strings.ContainsAny(c.user, "\x01\r\n\x00") || strings.ContainsAny(c.token, "\x01\r\n\x00") {
		return "", nil, ErrInvalidCredentials
	}
	return Mechanism, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge with an empty response, so that
// the server ends the exchange with a refusal, and records the challenge
// (see Failure). XOAUTH2 has no second challenge: Next returns
// sasl.ErrUnexpectedServerChallenge for one, and the caller cancels the
// exchange.
func (c *Client) Next(challenge []byte) (response []byte, err error) {
	if c.failure != nil {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	c.failure = ParseFailure(challenge)
	return []byte{}, nil
}

// Failure returns the server's error challenge, or nil when the server sent
// none (it accepted the token, or refused it without a challenge, as
// Microsoft's servers do).
func (c *Client) Failure() *Failure { return c.failure }

// Failure is the server's XOAUTH2 error challenge. Its fields are the
// server's text cleaned by safetext.Sanitize (no control characters,
// at most 256 bytes); they hold no credential.
type Failure struct {
	// Status is the HTTP-like status: "401" when the token is invalid or
	// expired, "400" for a malformed request, or an OAuth error code such
	// as "invalid_token" on some servers. Empty when the challenge was not
	// a JSON object.
	Status string
	// Schemes lists the authentication schemes the server takes, such as
	// "bearer".
	Schemes string
	// Scope is the OAuth scope the server asks for.
	Scope string
	// Malformed is true when the challenge was not a JSON object.
	Malformed bool
}

// ParseFailure decodes an XOAUTH2 error challenge (the JSON document,
// already base64-decoded). It never fails: a challenge that is not a JSON
// object gives a Failure with Malformed set. Status may be a JSON string
// or number.
func ParseFailure(challenge []byte) *Failure {
	var doc struct {
		Status  json.RawMessage `json:"status"`
		Schemes string          `json:"schemes"`
		Scope   string          `json:"scope"`
	}
	if err := json.Unmarshal(challenge, &doc); err != nil {
		return &Failure{Malformed: true}
	}
	f := &Failure{Schemes: safetext.Sanitize(doc.Schemes), Scope: safetext.Sanitize(doc.Scope)}
	var s string
	var n json.Number
	switch {
	case len(doc.Status) == 0:
	case json.Unmarshal(doc.Status, &s) == nil:
		f.Status = safetext.Sanitize(s)
	case json.Unmarshal(doc.Status, &n) == nil:
		f.Status = safetext.Sanitize(n.String())
	}
	return f
}

// InvalidToken reports whether the refusal is about the token: status 401
// (the token is invalid or expired, RFC 6750's invalid_token, also accepted
// by name), or 400, which Gmail sends for an expired or revoked token. It is
// the case where a refreshed token may succeed. A Malformed challenge and
// any other status give false.
func (f *Failure) InvalidToken() bool {
	if f == nil {
		return false
	}
	return f.Status == "401" || f.Status == "400" || strings.EqualFold(f.Status, "invalid_token")
}

// Error describes the refusal, for example
// `XOAUTH2 refused: status 401, schemes "bearer", scope "mail"`.
func (f *Failure) Error() string {
	if f.Malformed {
		return "XOAUTH2 refused (the error challenge is not JSON)"
	}
	var b strings.Builder
	b.WriteString("XOAUTH2 refused")
	sep := ": "
	add := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s%s %s", sep, name, v)
			sep = ", "
		}
	}
	add("status", f.Status)
	if f.Schemes != "" {
		add("schemes", strconv.Quote(f.Schemes))
	}
	if f.Scope != "" {
		add("scope", strconv.Quote(f.Scope))
	}
	return b.String()
}

// Token calls the caller's token source once and checks what it returns,
// for the operation op ("pop3 login", "imap login"). A failure of the
// source that is a *mailaccess.Error keeps its kind and text; otherwise
// it is, when ctx has ended, mailaccess.ErrConnection with ctx's
// error (see mailerr.ContextErr); when it is a network failure (its
// endpoint is unreachable), mailaccess.ErrConnection; when the source's
// error is temporary (mailaccess.IsTemporary), mailaccess.ErrUnavailable;
// otherwise mailaccess.ErrAuth. An empty token is ErrAuth; a token with
// control characters, which could never be sent safely, is
// ErrInvalidArgument. The token never appears in an error.
func Token(ctx context.Context, op string, a mailaccess.Auth) (string, error) {
	tok, err := a.Token(ctx)
	if err != nil {
		if cerr := mailerr.ContextErr(ctx); cerr != nil {
			return "", mailerr.New(op, mailaccess.ErrConnection, "", cerr)
		}
		if e, ok := errors.AsType[*mailaccess.Error](err); ok && e.Kind != nil {
			// The source speaks this package's language already: its kind
			// and text stay, under this operation.
			return "", mailerr.New(op, e.Kind, e.Text, fmt.Errorf("getting the OAuth2 token: %w", mailerr.HideContext(e.Err)))
		}
		return "", mailerr.New(op, SourceErrorKind(err, mailaccess.IsTemporary(err)), "", fmt.Errorf("getting the OAuth2 token: %w", mailerr.HideContext(err)))
	}
	if tok == "" {
		return "", mailerr.New(op, mailaccess.ErrAuth, "", errors.New("the token source returned an empty token"))
	}
	if strings.ContainsFunc(tok, unicode.IsControl) {
		return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("the OAuth2 token holds control characters"))
	}
	return tok, nil
}

// SourceErrorKind is the kind of the error of a token source that failed
// while the caller's context was still alive: mailaccess.ErrConnection
// for a network failure (a net.Error: the endpoint could not be reached
// or did not answer in time; or an error that already says
// mailaccess.ErrConnection), mailaccess.ErrUnavailable when temporary
// says the failure may go away, mailaccess.ErrAuth otherwise (a refused
// grant: the user must authorize again).
func SourceErrorKind(err error, temporary bool) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, mailaccess.ErrConnection):
		return mailaccess.ErrConnection
	case temporary:
		return mailaccess.ErrUnavailable
	}
	return mailaccess.ErrAuth
}
