package unimail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/internal/xoauth2"
	"github.com/unimail/unimail/mailaccess"
)

// Refresher is an oauth2.TokenSource that can replace a token a server
// refused. When Options.TokenSource is a Refresher, Dial asks it for the
// replacement, so that the refreshed token is the one that later Token calls
// (and later Dials) get. TokenCache is a Refresher; Dial wraps any other
// source in a TokenCache of its own for the one call.
type Refresher interface {
	oauth2.TokenSource
	// Refresh returns a token to use in place of refused, the access
	// token that a server has just refused. It is fetched anew from the
	// token endpoint, not taken from a cache, unless another caller has
	// already replaced refused, in which case Refresh returns that
	// replacement. Later Token calls return the new token. Refresh returns
	// an error rather than refused itself.
	Refresh(refused string) (*oauth2.Token, error)
}

// TokenCache is an oauth2.TokenSource for Options.TokenSource that can be
// told that a server refused its token. Like oauth2.ReuseTokenSource it
// returns the same token while that token is valid (not expired, with the
// oauth2 package's ten-second margin) and gets a new one from its source
// when it is not. Refresh (called by Dial when a server refuses the token)
// gets a new one at once, past every cache, and the refused token is never
// handed out again.
//
// The source may cache tokens itself, as the sources of
// oauth2.Config.TokenSource and oauth2.ReuseTokenSource do: a refresh then
// goes past that cache to the source beneath it, which for
// oauth2.Config.TokenSource uses the refresh token. A source that caches in
// some other way must return a new token when asked, or Refresh fails.
//
// A TokenCache is safe for concurrent use; share one between all the Dials
// of one account, so that one refresh serves them all. Concurrent calls wait
// for each other while a token is fetched. Its String, GoString and
// LogValue never show a token.
type TokenCache struct {
	src oauth2.TokenSource

	mu      sync.Mutex
	tok     *oauth2.Token
	refused string // the last access token a server refused
}

var _ Refresher = (*TokenCache)(nil)

// NewTokenCache returns a TokenCache that starts with t, which may be nil
// (a token saved by an earlier run, say), and gets new tokens from src.
func NewTokenCache(t *oauth2.Token, src oauth2.TokenSource) *TokenCache {
	return &TokenCache{src: src, tok: t}
}

// Token returns the cached token while it is valid and not refused, and
// otherwise a new one from the source.
func (c *TokenCache) Token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Valid() && c.tok.AccessToken != c.refused {
		return c.tok, nil
	}
	t, err := c.src.Token()
	if err == nil && c.refused != "" && t != nil && t.AccessToken == c.refused {
		// The source's own cache still holds the refused token.
		t, err = fresh(c.src)
	}
	if err != nil {
		return nil, err
	}
	if err := checkSourceToken(t, c.refused); err != nil {
		return nil, err
	}
	c.tok = t
	return t, nil
}

// Refresh gets a token in place of refused; see Refresher.
func (c *TokenCache) Refresh(refused string) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Valid() && c.tok.AccessToken != refused && c.tok.AccessToken != c.refused {
		// Another caller has replaced it already.
		return c.tok, nil
	}
	c.refused = refused
	if c.tok != nil && c.tok.AccessToken == refused {
		c.tok = nil
	}
	t, err := fresh(c.src)
	if err != nil {
		return nil, err
	}
	if err := checkSourceToken(t, refused); err != nil {
		return nil, err
	}
	c.tok = t
	return t, nil
}

// fresh gets a token from src past the cache of oauth2.ReuseTokenSource: a
// ReuseTokenSource built around src with an invalid token unwraps src if it
// is such a cache (as the sources of oauth2.Config.TokenSource are) and asks
// the source beneath it for a new token.
func fresh(src oauth2.TokenSource) (*oauth2.Token, error) {
	return oauth2.ReuseTokenSource(&oauth2.Token{}, src).Token()
}

// errRefusedAgain is the cause when a source hands out the refused token
// again.
var errRefusedAgain = errors.New("the token source returned the token that the server refused again; it cannot refresh it")

// checkSourceToken checks what a source returned.
func checkSourceToken(t *oauth2.Token, refused string) error {
	switch {
	case t == nil || t.AccessToken == "":
		return errors.New("the token source returned no access token")
	case refused != "" && t.AccessToken == refused:
		return errRefusedAgain
	}
	return nil
}

// String describes the cache without the token: whether it holds one and
// until when it is valid.
func (c *TokenCache) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.tok == nil || c.tok.AccessToken == "":
		return "unimail.TokenCache{no token}"
	case c.tok.Expiry.IsZero():
		return "unimail.TokenCache{token: REDACTED, no expiry}"
	}
	return "unimail.TokenCache{token: REDACTED, expires " + c.tok.Expiry.UTC().Format(time.RFC3339) + "}"
}

// GoString is String, so that %#v does not show the token either.
func (c *TokenCache) GoString() string { return c.String() }

// LogValue makes slog print String.
func (c *TokenCache) LogValue() slog.Value { return slog.StringValue(c.String()) }

// dialOAuth is DialTarget with Options.TokenSource: it gets a token,
// dials, and when the server refuses the token, refreshes it once and
// dials once more. Its own errors are of the operation "<proto> login",
// as the driver's are.
func dialOAuth[T any](ctx context.Context, proto string, o *Options, auth mailaccess.Auth, dial func(context.Context, mailaccess.Auth) (T, error)) (T, error) {
	op := proto + " " + mailerr.OpLogin
	var none T
	if auth.Token != nil {
		return none, mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("set Options.TokenSource or Auth.Token, not both"))
	}
	switch mech := strings.ToUpper(auth.Mechanism); mech {
	case mailaccess.MechAuto, mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer:
		auth.Mechanism = mech
	default:
		return none, mailerr.New(op, mailaccess.ErrInvalidArgument, "", fmt.Errorf("Options.TokenSource needs mechanism XOAUTH2 or OAUTHBEARER, not %q", safetext.Sanitize(auth.Mechanism)))
	}
	if auth.Username == "" {
		return none, mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("OAuth2 needs a user name (Auth.Username or the URL's user)"))
	}
	// Never send a password along with a token.
	auth.Password = ""

	r, ok := o.TokenSource.(Refresher)
	if !ok {
		r = NewTokenCache(nil, o.TokenSource)
	}
	tok, terr := sourceToken(ctx, op, "getting the OAuth2 token", r.Token)
	if terr != nil {
		return none, terr
	}
	mb, err := dial(ctx, withToken(auth, tok))
	if !refused(err) {
		return mb, err
	}
	tok2, rerr := sourceToken(ctx, op, "the server refused the OAuth2 token, and getting a new one failed", func() (*oauth2.Token, error) { return r.Refresh(tok) })
	if rerr != nil {
		var e *mailaccess.Error
		if errors.As(err, &e) {
			rerr.Text = e.Text
		}
		return none, rerr
	}
	return dial(ctx, withToken(auth, tok2))
}

// withToken returns auth with a Token function that returns tok.
func withToken(auth mailaccess.Auth, tok string) mailaccess.Auth {
	auth.Token = func(context.Context) (string, error) { return tok, nil }
	return auth
}

// refused reports whether err is the server refusing the credentials, for
// good (not a temporary refusal such as LOGIN-DELAY, which is
// mailaccess.ErrUnavailable).
func refused(err error) bool {
	return errors.Is(err, mailaccess.ErrAuth) && !mailaccess.IsTemporary(err)
}

// sourceToken calls get (a token source) and returns the checked access
// token; what says what get's failure means. It returns when ctx ends
// even if get does not: get then goes on in the background and its result
// is dropped (a TokenCache still keeps it).
func sourceToken(ctx context.Context, op, what string, get func() (*oauth2.Token, error)) (string, *mailaccess.Error) {
	if cerr := mailerr.ContextErr(ctx); cerr != nil {
		return "", mailerr.New(op, mailaccess.ErrConnection, "", cerr)
	}
	type result struct {
		t   *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		t, err := get()
		ch <- result{t, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return "", mailerr.New(op, mailaccess.ErrConnection, "", mailerr.ContextErr(ctx))
	}
	if res.err != nil {
		// The source's own timeouts are not the caller's context: they
		// stay temporary (mailerr.HideContext).
		kind := xoauth2.SourceErrorKind(res.err, temporarySourceError(res.err))
		return "", mailerr.New(op, kind, "", fmt.Errorf("%s: %w", what, mailerr.HideContext(res.err)))
	}
	if err := checkSourceToken(res.t, ""); err != nil {
		return "", mailerr.New(op, mailaccess.ErrAuth, "", err)
	}
	if typ := res.t.Type(); !strings.EqualFold(typ, "Bearer") {
		return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", fmt.Errorf("the token is of type %q; XOAUTH2 and OAUTHBEARER carry bearer tokens only", safetext.Sanitize(typ)))
	}
	if strings.ContainsFunc(res.t.AccessToken, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("the access token holds control characters or spaces"))
	}
	return res.t.AccessToken, nil
}

// temporarySourceError reports whether a token source's error may go away:
// the token endpoint timed out, or answered with a server error (5xx), 429
// or 408. A refused grant (invalid_grant: a revoked or expired refresh
// token) is not temporary: the user must authorize again. (An endpoint
// that cannot be reached is a network failure, which
// xoauth2.SourceErrorKind makes mailaccess.ErrConnection.)
func temporarySourceError(err error) bool {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response == nil {
			return false
		}
		sc := re.Response.StatusCode
		return sc >= 500 || sc == http.StatusTooManyRequests || sc == http.StatusRequestTimeout
	}
	return errors.Is(err, context.DeadlineExceeded)
}
