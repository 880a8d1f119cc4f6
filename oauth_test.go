package unimail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// tokenEndpoint is an OAuth 2.0 token endpoint (RFC 6749 section 6) that
// grants a new access token for the refresh token "refresh-1", counts the
// grants, and hands every new token to onIssue.
type tokenEndpoint struct {
	*httptest.Server
	onIssue func(token string)

	mu     sync.Mutex
	grants int
	issued []string
	fail   string // when set, answer with this OAuth error instead
	status int    // the HTTP status for fail
}

func newTokenEndpoint(t *testing.T, onIssue func(token string)) *tokenEndpoint {
	e := &tokenEndpoint{onIssue: onIssue}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	e.mu.Lock()
	fail, status := e.fail, e.status
	e.mu.Unlock()
	if fail != "" {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": fail})
		return
	}
	if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "refresh-1" {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	e.mu.Lock()
	e.grants++
	tok := fmt.Sprintf("access-%d-%x", e.grants, time.Now().UnixNano())
	e.issued = append(e.issued, tok)
	e.mu.Unlock()
	if e.onIssue != nil {
		e.onIssue(tok)
	}
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

// failWith makes the endpoint answer every request with an OAuth error.
func (e *tokenEndpoint) failWith(status int, code string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status, e.fail = status, code
}

func (e *tokenEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.grants
}

func (e *tokenEndpoint) tokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.issued...)
}

func (e *tokenEndpoint) config() *oauth2.Config {
	return &oauth2.Config{ClientID: "client", ClientSecret: "client-secret", Endpoint: oauth2.Endpoint{TokenURL: e.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// source returns what a program gets from oauth2.Config.TokenSource: a
// cache in front of a refresher, starting with start (which may hold an
// access token that the mail server refuses).
func (e *tokenEndpoint) source(t *testing.T, start *oauth2.Token) oauth2.TokenSource {
	start.RefreshToken = "refresh-1"
	return e.config().TokenSource(t.Context(), start)
}

// oauthServer is a poptest or imaptest server that takes tokens.
type oauthServer struct {
	name     string
	url      string // without user
	tls      *tls.Config
	addToken func(token, user string)
	logins   func() []string // the mechanisms of the AUTH/AUTHENTICATE commands so far
}

func oauthServers(t *testing.T) []oauthServer {
	ps := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}})
	ps.AddUser("alice", "pw")
	ps.AddMessage("alice", []byte("Subject: x\r\n\r\nx\r\n"))
	// imaptest offers the token mechanisms once it knows a token.
	is := imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{"token-of-bob": "bob"}})
	is.AddUser("alice", "pw")
	is.AddUser("bob", "pw")
	is.Append("alice", "INBOX", []byte("Subject: x\r\n\r\nx\r\n"))
	return []oauthServer{
		{
			name: "pop3s", url: "pop3s://%s@" + ps.Addr, tls: ps.ClientTLSConfig(), addToken: ps.AddToken,
			logins: func() []string {
				var m []string
				for _, c := range ps.Commands() {
					if c.Name == "AUTH" {
						m = append(m, c.Args[0])
					}
				}
				return m
			},
		},
		{
			name: "imaps", url: "imaps://%s@" + is.Addr + "/INBOX", tls: is.ClientTLSConfig(), addToken: is.AddToken,
			logins: func() []string {
				var m []string
				for _, c := range is.Commands() {
					if c.Name == "AUTHENTICATE" {
						f := strings.Fields(c.Line)
						m = append(m, f[2])
					}
				}
				return m
			},
		},
	}
}

// checkNoSecret fails if err shows one of the tokens.
func checkNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range append(secrets, "refresh-1", "client-secret") {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

// listOne checks that the session works and ends it.
func listOne(t *testing.T, mb mailaccess.Mailbox) {
	t.Helper()
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Errorf("List: %d messages, %v", len(list), err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOAuthMechanisms(t *testing.T) {
	for _, srv := range oauthServers(t) {
		ep := newTokenEndpoint(t, func(tok string) { srv.addToken(tok, "alice") })
		for _, c := range []struct {
			user, mech, want string
		}{
			{"alice", "", "OAUTHBEARER"}, // the server offers both
			{"alice;AUTH=XOAUTH2", "", "XOAUTH2"},
			{"alice", "xoauth2", "XOAUTH2"},
			{"alice", "OAUTHBEARER", "OAUTHBEARER"},
		} {
			before := len(srv.logins())
			mb, err := unimail.Dial(t.Context(), fmt.Sprintf(srv.url, c.user), &unimail.Options{
				DialOptions: mailaccess.DialOptions{
					TLSConfig: srv.tls,
					Timeout:   5 * time.Second,
					Auth:      mailaccess.Auth{Mechanism: c.mech},
				},
				TokenSource: ep.source(t, &oauth2.Token{}),
			})
			if err != nil {
				t.Errorf("%s %s %q: %v", srv.name, c.user, c.mech, err)
				continue
			}
			listOne(t, mb)
			if got := srv.logins()[before:]; len(got) != 1 || got[0] != c.want {
				t.Errorf("%s %s %q: logins %q, want [%s]", srv.name, c.user, c.mech, got, c.want)
			}
		}
		// Every Dial got its own source, which asked the endpoint once.
		if ep.count() != 4 {
			t.Errorf("%s: %d grants, want 4", srv.name, ep.count())
		}
	}
}

// TestOAuthOnlyXOAUTH2 checks the automatic choice on a server that offers
// XOAUTH2 only, as Microsoft 365's POP3 does.
func TestOAuthOnlyXOAUTH2(t *testing.T) {
	ps := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"XOAUTH2"}})
	ps.AddUser("alice", "pw")
	ps.AddMessage("alice", []byte("Subject: x\r\n\r\nx\r\n"))
	// A short token goes on the AUTH line; one as long as Microsoft's
	// goes on a line of its own after the server's "+", as Microsoft 365
	// expects.
	long := strings.Repeat("microsoft-sized-token.", 80)
	for _, c := range []struct {
		token string
		args  int
	}{{"good-token", 2}, {long, 1}} {
		ps.AddToken(c.token, "alice")
		mb, err := unimail.Dial(t.Context(), "pop3s://alice@"+ps.Addr, &unimail.Options{
			DialOptions: mailaccess.DialOptions{
				TLSConfig: ps.ClientTLSConfig(),
				Timeout:   5 * time.Second,
			},
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: c.token}),
		})
		if err != nil {
			t.Fatal(err)
		}
		listOne(t, mb)
	}
	var auth []poptest.Command
	for _, c := range ps.Commands() {
		if c.Name == "AUTH" {
			auth = append(auth, c)
		}
	}
	if len(auth) != 2 || auth[0].Args[0] != "XOAUTH2" || auth[1].Args[0] != "XOAUTH2" || len(auth[0].Args) != 2 || len(auth[1].Args) != 1 {
		t.Errorf("AUTH commands %q, want AUTH XOAUTH2 with an initial response, then AUTH XOAUTH2 alone", auth)
	}
}

// TestOAuthRefreshAfterRefusal starts from a cached access token that has
// not expired but that the server refuses (revoked): Dial refreshes it once,
// past the cache of oauth2.Config.TokenSource, and logs in again.
func TestOAuthRefreshAfterRefusal(t *testing.T) {
	for _, srv := range oauthServers(t) {
		ep := newTokenEndpoint(t, func(tok string) { srv.addToken(tok, "alice") })
		stale := &oauth2.Token{AccessToken: "revoked-" + srv.name, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
		src := ep.source(t, stale)
		cache := unimail.NewTokenCache(nil, src)
		opts := &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: srv.tls, Timeout: 5 * time.Second}, TokenSource: cache}
		url := fmt.Sprintf(srv.url, "alice")

		mb, err := unimail.Dial(t.Context(), url, opts)
		if err != nil {
			t.Fatalf("%s: %v", srv.name, err)
		}
		listOne(t, mb)
		if ep.count() != 1 || len(srv.logins()) != 2 {
			t.Errorf("%s: %d refreshes and %d logins, want 1 and 2", srv.name, ep.count(), len(srv.logins()))
		}

		// The cache hands the refreshed token to the next Dial: no refusal,
		// no refresh.
		mb, err = unimail.Dial(t.Context(), url, opts)
		if err != nil {
			t.Fatalf("%s, second Dial: %v", srv.name, err)
		}
		listOne(t, mb)
		if ep.count() != 1 || len(srv.logins()) != 3 {
			t.Errorf("%s, second Dial: %d refreshes and %d logins, want 1 and 3", srv.name, ep.count(), len(srv.logins()))
		}

		// A plain source, without a shared TokenCache, still holds the
		// revoked token in its own cache: each Dial is refused once, then
		// refreshes and succeeds.
		mb, err = unimail.Dial(t.Context(), url, &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: srv.tls, Timeout: 5 * time.Second}, TokenSource: src})
		if err != nil {
			t.Fatalf("%s, plain source: %v", srv.name, err)
		}
		listOne(t, mb)
		if ep.count() != 2 || len(srv.logins()) != 5 {
			t.Errorf("%s, plain source: %d refreshes and %d logins, want 2 and 5", srv.name, ep.count(), len(srv.logins()))
		}
	}
}

// TestOAuthRefusedTwice: when the refreshed token is refused too, Dial
// gives up after one retry with ErrAuth.
func TestOAuthRefusedTwice(t *testing.T) {
	for _, srv := range oauthServers(t) {
		ep := newTokenEndpoint(t, nil) // the mail server knows none of its tokens
		_, err := unimail.Dial(t.Context(), fmt.Sprintf(srv.url, "alice"), &unimail.Options{
			DialOptions: mailaccess.DialOptions{
				TLSConfig: srv.tls,
				Timeout:   5 * time.Second,
			},
			TokenSource: ep.source(t, &oauth2.Token{}),
		})
		if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) {
			t.Errorf("%s: %v, want a permanent ErrAuth", srv.name, err)
		}
		if ep.count() != 2 || len(srv.logins()) != 2 {
			t.Errorf("%s: %d grants and %d logins, want 2 and 2", srv.name, ep.count(), len(srv.logins()))
		}
		checkNoSecret(t, err, ep.tokens()...)
	}
}

// countingDialer counts the connections Dial makes.
func countingDialer(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

type sourceFunc func() (*oauth2.Token, error)

func (f sourceFunc) Token() (*oauth2.Token, error) { return f() }

// TestOAuthSourceFails: a token source that fails makes no connection, and
// its error says whether a later try may succeed.
func TestOAuthSourceFails(t *testing.T) {
	for _, srv := range oauthServers(t) {
		url := fmt.Sprintf(srv.url, "alice")
		var conns atomic.Int32
		opts := func(src oauth2.TokenSource) *unimail.Options {
			return &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: srv.tls, Timeout: 5 * time.Second, DialContext: countingDialer(&conns)}, TokenSource: src}
		}

		ep := newTokenEndpoint(t, nil)
		ep.failWith(http.StatusBadRequest, "invalid_grant")
		_, err := unimail.Dial(t.Context(), url, opts(ep.source(t, &oauth2.Token{})))
		var re *oauth2.RetrieveError
		if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) || !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("%s, invalid_grant: %v, want a permanent ErrAuth with the RetrieveError", srv.name, err)
		}
		checkNoSecret(t, err)

		ep.failWith(http.StatusServiceUnavailable, "temporarily_unavailable")
		_, err = unimail.Dial(t.Context(), url, opts(ep.source(t, &oauth2.Token{})))
		if !errors.Is(err, mailaccess.ErrUnavailable) || !mailaccess.IsTemporary(err) {
			t.Errorf("%s, 503: %v, want a temporary ErrUnavailable", srv.name, err)
		}

		// An endpoint that cannot be reached is a temporary ErrConnection.
		down := newTokenEndpoint(t, nil)
		down.Close()
		_, err = unimail.Dial(t.Context(), url, opts(down.source(t, &oauth2.Token{})))
		if !errors.Is(err, mailaccess.ErrConnection) || !mailaccess.IsTemporary(err) {
			t.Errorf("%s, endpoint down: %v, want a temporary ErrConnection", srv.name, err)
		}

		boom := errors.New("keychain locked")
		_, err = unimail.Dial(t.Context(), url, opts(sourceFunc(func() (*oauth2.Token, error) { return nil, boom })))
		if !errors.Is(err, mailaccess.ErrAuth) || !errors.Is(err, boom) || mailaccess.IsTemporary(err) {
			t.Errorf("%s, failing source: %v", srv.name, err)
		}
		_, err = unimail.Dial(t.Context(), url, opts(sourceFunc(func() (*oauth2.Token, error) { return &oauth2.Token{}, nil })))
		if !errors.Is(err, mailaccess.ErrAuth) || !strings.Contains(err.Error(), "no access token") {
			t.Errorf("%s, empty token: %v", srv.name, err)
		}
		if n := conns.Load(); n != 0 {
			t.Errorf("%s: %d connections for failing token sources, want 0", srv.name, n)
		}

		// The refresh after a refusal fails: the refusal and the reason
		// for the failed refresh are both in the error.
		ep2 := newTokenEndpoint(t, nil)
		src := ep2.source(t, &oauth2.Token{AccessToken: "revoked", Expiry: time.Now().Add(time.Hour)})
		ep2.failWith(http.StatusBadRequest, "invalid_grant")
		before := len(srv.logins())
		_, err = unimail.Dial(t.Context(), url, opts(src))
		if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) || !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("%s, failed refresh: %v", srv.name, err)
		}
		if n := len(srv.logins()) - before; n != 1 {
			t.Errorf("%s, failed refresh: %d logins, want 1", srv.name, n)
		}
		checkNoSecret(t, err, "revoked")
	}
}

// TestOAuthCannotRefresh: a source that hands out the refused token again
// (a static token) is asked once, and Dial does not log in with the same
// token twice.
func TestOAuthCannotRefresh(t *testing.T) {
	for _, srv := range oauthServers(t) {
		_, err := unimail.Dial(t.Context(), fmt.Sprintf(srv.url, "alice"), &unimail.Options{
			DialOptions: mailaccess.DialOptions{
				TLSConfig: srv.tls,
				Timeout:   5 * time.Second,
			},
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static-revoked"}),
		})
		if !errors.Is(err, mailaccess.ErrAuth) || !strings.Contains(err.Error(), "cannot refresh") {
			t.Errorf("%s: %v, want ErrAuth saying the source cannot refresh", srv.name, err)
		}
		if n := len(srv.logins()); n != 1 {
			t.Errorf("%s: %d logins, want 1", srv.name, n)
		}
		checkNoSecret(t, err, "static-revoked")
	}
}

// TestOAuthTemporaryRefusal: a refusal that the server marks temporary is
// not the token's fault, so Dial does not refresh it.
func TestOAuthTemporaryRefusal(t *testing.T) {
	ps := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"XOAUTH2"}, Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "AUTH" {
			return poptest.Fault{Err: "[LOGIN-DELAY] wait a minute"}
		}
		return poptest.Fault{}
	}})
	ps.AddUser("alice", "pw")
	is := imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{"tok": "alice"}, Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "AUTHENTICATE" {
			return imaptest.Fault{No: "[UNAVAILABLE] try later"}
		}
		return imaptest.Fault{}
	}})
	is.AddUser("alice", "pw")
	for _, c := range []struct {
		url string
		tls *tls.Config
	}{{"pop3s://alice@" + ps.Addr, ps.ClientTLSConfig()}, {"imaps://alice@" + is.Addr, is.ClientTLSConfig()}} {
		var calls atomic.Int32
		src := sourceFunc(func() (*oauth2.Token, error) {
			calls.Add(1)
			return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", calls.Load())}, nil
		})
		_, err := unimail.Dial(t.Context(), c.url, &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: c.tls, Timeout: 5 * time.Second}, TokenSource: src})
		if err == nil || !mailaccess.IsTemporary(err) {
			t.Errorf("%s: %v, want a temporary error", c.url, err)
		}
		if calls.Load() != 1 {
			t.Errorf("%s: the source was asked %d times, want 1", c.url, calls.Load())
		}
	}
}

func TestOAuthInvalidArguments(t *testing.T) {
	ps := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"XOAUTH2"}})
	var conns atomic.Int32
	good := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good"})
	for _, c := range []struct {
		name string
		url  string
		auth mailaccess.Auth
		src  oauth2.TokenSource
	}{
		{"both token kinds", "pop3s://alice@" + ps.Addr, mailaccess.Auth{Token: func(context.Context) (string, error) { return "x", nil }}, good},
		{"password mechanism", "pop3s://alice@" + ps.Addr, mailaccess.Auth{Mechanism: "PLAIN"}, good},
		{"password mechanism in the URL", "pop3s://alice;AUTH=LOGIN@" + ps.Addr, mailaccess.Auth{}, good},
		{"no user", "pop3s://" + ps.Addr, mailaccess.Auth{}, good},
		{"MAC token", "pop3s://alice@" + ps.Addr, mailaccess.Auth{}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good", TokenType: "mac"})},
		{"CR LF in token", "pop3s://alice@" + ps.Addr, mailaccess.Auth{}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good\r\nQUIT"})},
		{"^A in token", "imaps://alice@" + ps.Addr, mailaccess.Auth{}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good\x01auth=x"})},
		{"space in token", "imaps://alice@" + ps.Addr, mailaccess.Auth{}, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good token"})},
	} {
		_, err := unimail.Dial(t.Context(), c.url, &unimail.Options{DialOptions: mailaccess.DialOptions{Auth: c.auth, TLSConfig: ps.ClientTLSConfig(), DialContext: countingDialer(&conns)}, TokenSource: c.src})
		if !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", c.name, err)
		}
		checkNoSecret(t, err, "good\r", "good\x01", "good token")
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections, want 0", n)
	}
}

// TestOAuthContextEnds: Dial returns when ctx ends even while the token
// source hangs, without connecting.
func TestOAuthContextEnds(t *testing.T) {
	ps := poptest.NewTLSServer(t, &poptest.Config{SASL: []string{"XOAUTH2"}})
	release := make(chan struct{})
	entered := make(chan struct{})
	t.Cleanup(func() { close(release) })
	src := sourceFunc(func() (*oauth2.Token, error) {
		close(entered)
		<-release
		return &oauth2.Token{AccessToken: "late"}, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-entered
		cancel()
	}()
	var conns atomic.Int32
	start := time.Now()
	_, err := unimail.Dial(ctx, "pop3s://alice@"+ps.Addr, &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: ps.ClientTLSConfig(), DialContext: countingDialer(&conns)}, TokenSource: src})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v after cancellation", d)
	}
	if conns.Load() != 0 {
		t.Error("Dial connected although the token never came")
	}
}

// countingSource returns "tok-1", "tok-2", ... with the given lifetime, and
// counts its calls.
type countingSource struct {
	mu    sync.Mutex
	n     int
	life  time.Duration
	gate  chan struct{} // when set, each call waits for it
	calls atomic.Int32
}

func (s *countingSource) Token() (*oauth2.Token, error) {
	s.calls.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	t := &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", s.n)}
	if s.life != 0 {
		t.Expiry = time.Now().Add(s.life)
	}
	return t, nil
}

func TestTokenCache(t *testing.T) {
	src := &countingSource{life: time.Hour}
	c := unimail.NewTokenCache(nil, src)
	for range 3 {
		tok, err := c.Token()
		if err != nil || tok.AccessToken != "tok-1" {
			t.Fatalf("Token = %v, %v; want tok-1", tok, err)
		}
	}
	if src.calls.Load() != 1 {
		t.Errorf("%d source calls for a valid token, want 1", src.calls.Load())
	}

	// A token within the expiry margin is refreshed.
	src = &countingSource{life: time.Second}
	c = unimail.NewTokenCache(&oauth2.Token{AccessToken: "old", Expiry: time.Now().Add(-time.Minute)}, src)
	if tok, _ := c.Token(); tok.AccessToken != "tok-1" {
		t.Errorf("expired start token: got %s", tok.AccessToken)
	}
	if tok, _ := c.Token(); tok.AccessToken != "tok-2" {
		t.Errorf("token about to expire: got %s, want a new one", tok.AccessToken)
	}

	// Refresh goes past the cache of an oauth2.ReuseTokenSource, and the
	// refused token never comes back although that cache still holds it.
	base := &countingSource{life: time.Hour}
	reuse := oauth2.ReuseTokenSource(&oauth2.Token{AccessToken: "revoked", Expiry: time.Now().Add(time.Hour)}, base)
	c = unimail.NewTokenCache(nil, reuse)
	if tok, _ := c.Token(); tok.AccessToken != "revoked" {
		t.Fatalf("first token %s, want the cached one", tok.AccessToken)
	}
	tok, err := c.Refresh("revoked")
	if err != nil || tok.AccessToken != "tok-1" {
		t.Fatalf("Refresh = %v, %v; want tok-1", tok, err)
	}
	if tok, _ := c.Token(); tok.AccessToken != "tok-1" {
		t.Errorf("Token after Refresh = %s, want tok-1", tok.AccessToken)
	}
	if r, _ := reuse.Token(); r.AccessToken != "revoked" {
		t.Fatalf("the reuse cache changed: %s", r.AccessToken)
	}

	// A source that cannot give anything but the refused token.
	c = unimail.NewTokenCache(nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static"}))
	if _, err := c.Refresh("static"); err == nil {
		t.Error("Refresh accepted the refused token back")
	}
	if _, err := c.Token(); err == nil {
		t.Error("Token handed out the refused token")
	}
}

// TestTokenCacheConcurrentRefresh: many sessions refused with the same
// token cause one refresh, and all of them get the new token.
func TestTokenCacheConcurrentRefresh(t *testing.T) {
	src := &countingSource{life: time.Hour, gate: make(chan struct{})}
	c := unimail.NewTokenCache(&oauth2.Token{AccessToken: "refused", Expiry: time.Now().Add(time.Hour)}, src)
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			tok, err := c.Refresh("refused")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	// Let the first fetch through once some callers are waiting.
	for src.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
	wg.Wait()
	for _, g := range got {
		if g != "tok-1" {
			t.Errorf("a caller got %q, want tok-1", g)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

// TestTokenCacheHidesToken: printing or logging a TokenCache, or Options
// holding one, never shows the token.
func TestTokenCacheHidesToken(t *testing.T) {
	const secret = "ya29.very-secret"
	c := unimail.NewTokenCache(&oauth2.Token{AccessToken: secret, Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, nil)
	opts := unimail.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: "alice", Token: func(context.Context) (string, error) { return secret, nil }}}, TokenSource: c}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out = append(out, fmt.Sprintf(f, c), fmt.Sprintf(f, opts), fmt.Sprintf(f, &opts))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("dial", "src", c, "opts", opts)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("dial", "src", c)
	out = append(out, buf.String())
	for _, s := range out {
		if strings.Contains(s, secret) {
			t.Errorf("shows the token: %s", s)
		}
	}
	if s := c.String(); s != "unimail.TokenCache{token: REDACTED, expires 2030-01-02T03:04:05Z}" {
		t.Errorf("String() = %q", s)
	}
	if s := unimail.NewTokenCache(nil, nil).String(); s != "unimail.TokenCache{no token}" {
		t.Errorf("String() of an empty cache = %q", s)
	}
}
