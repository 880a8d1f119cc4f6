package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// authority is a small OAuth 2.0 authorization server for Dovecot's oauth2
// passdb: an introspection endpoint (RFC 7662 style: POST token=..., answer
// {"active": true, "username": ...}) and a token endpoint that grants a new
// access token for the refresh token "refresh-1". It counts both.
type authority struct {
	*httptest.Server

	mu             sync.Mutex
	tokens         map[string]string // active access token -> user
	introspections int
	grants         int
	issued         []string
}

func newAuthority(t *testing.T) *authority {
	a := &authority{tokens: make(map[string]string)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", a.introspect)
	mux.HandleFunc("POST /token", a.token)
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *authority) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.introspections++
	user, ok := a.tokens[r.PostForm.Get("token")]
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user, "scope": "mail"})
}

func (a *authority) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != "refresh-1" {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	a.mu.Lock()
	a.grants++
	tok := fmt.Sprintf("access-%d-%x", a.grants, time.Now().UnixNano())
	a.tokens[tok] = user
	a.issued = append(a.issued, tok)
	a.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

// grant makes token active for u.
func (a *authority) grant(token, u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens[token] = u
}

// revoke makes token inactive.
func (a *authority) revoke(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tokens, token)
}

// counts returns the introspections (one per login attempt that reached
// the passdb) and the grants so far.
func (a *authority) counts() (introspections, grants int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.introspections, a.grants
}

// source is what a program gets from oauth2.Config.TokenSource, starting
// with start (which may be an access token the server refuses).
func (a *authority) source(t *testing.T, start *oauth2.Token) oauth2.TokenSource {
	conf := &oauth2.Config{ClientID: "unimail-test", Endpoint: oauth2.Endpoint{TokenURL: a.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	start.RefreshToken = "refresh-1"
	return conf.TokenSource(t.Context(), start)
}

// oauth2PassdbConfig is the Dovecot 2.3 configuration that makes it check
// tokens with the authority: XOAUTH2 and OAUTHBEARER go to an oauth2 passdb
// (after the harness's passwd-file, which refuses the token as a password
// and lets the next passdb decide) that introspects each token.
const oauth2PassdbConfig = `auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %s
}
`

// oauth2ExtConfig is dovecot-oauth2.conf.ext.
const oauth2ExtConfig = `introspection_mode = post
introspection_url = %s/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 10000
`

// startOAuthDovecot starts a Dovecot that takes the authority's tokens.
// The oauth2 passdb's file goes into a directory of its own that Dovecot's
// unprivileged auth process can read.
func startOAuthDovecot(t *testing.T, a *authority) *dovecottest.Server {
	dir, err := os.MkdirTemp("", "unimail-oauth2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	if err := os.WriteFile(ext, fmt.Appendf(nil, oauth2ExtConfig, a.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	return dovecottest.Start(t, &dovecottest.Options{ExtraConfig: fmt.Sprintf(oauth2PassdbConfig, ext)})
}

// oauthWays are the URLs of the four ways into d, for user.
func oauthWays(d *dovecottest.Server) []struct{ name, url string } {
	return []struct{ name, url string }{
		{"POP3S", "pop3s://" + user + "@" + d.POP3SAddr},
		{"POP3+STLS", "pop3://" + user + "@" + d.POP3Addr},
		{"IMAPS", "imaps://" + user + "@" + d.IMAPSAddr + "/INBOX"},
		{"IMAP+STARTTLS", "imap://" + user + "@" + d.IMAPAddr + "/INBOX"},
	}
}

// TestDovecotOAuth2 logs in to a real Dovecot with tokens, over every way
// in and with both mechanisms, and checks what a refused token does.
func TestDovecotOAuth2(t *testing.T) {
	a := newAuthority(t)
	d := startOAuthDovecot(t, a)
	msgs := mailaccesstest.Sample()
	d.Seed(t, user, "INBOX", msgs)
	a.grant("good-token", user)
	a.grant("bobs-token", "bob")

	dial := func(url, mech string, src oauth2.TokenSource) (mailaccess.Mailbox, error) {
		return unimail.Dial(t.Context(), url, &unimail.Options{
			DialOptions: mailaccess.DialOptions{
				Auth:      mailaccess.Auth{Mechanism: mech},
				TLSConfig: d.ClientTLSConfig(),
				Timeout:   10 * time.Second,
			},
			TokenSource: src,
		})
	}
	check := func(name string, mb mailaccess.Mailbox) {
		t.Helper()
		list, err := mb.List(t.Context())
		if err != nil || len(list) != len(msgs) {
			t.Errorf("%s: List: %d messages, %v; want %d", name, len(list), err, len(msgs))
		}
		if err := mb.Close(t.Context()); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}

	t.Run("good token", func(t *testing.T) {
		for _, w := range oauthWays(d) {
			for _, mech := range []string{"", mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer} {
				name := w.name + " " + mech
				i0, _ := a.counts()
				mb, err := dial(w.url, mech, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "good-token"}))
				if err != nil {
					t.Errorf("%s: %v\n%s", name, err, d.Log())
					continue
				}
				check(name, mb)
				if i, _ := a.counts(); i-i0 != 1 {
					t.Errorf("%s: %d introspections, want 1", name, i-i0)
				}
			}
		}
	})

	secure := []struct{ name, url string }{oauthWays(d)[0], oauthWays(d)[2]}

	t.Run("revoked token", func(t *testing.T) {
		// A static token cannot be refreshed: one refused login, ErrAuth.
		a.grant("soon-revoked", user)
		for _, w := range secure {
			for _, mech := range []string{mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer} {
				name := w.name + " " + mech
				src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "soon-revoked"})
				mb, err := dial(w.url, mech, src)
				if err != nil {
					t.Fatalf("%s, before revocation: %v\n%s", name, err, d.Log())
				}
				check(name, mb)
				a.revoke("soon-revoked")
				i0, _ := a.counts()
				_, err = dial(w.url, mech, src)
				if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) {
					t.Errorf("%s: %v, want a permanent ErrAuth", name, err)
				} else if strings.Contains(err.Error(), "soon-revoked") {
					t.Errorf("%s: the error shows the token: %v", name, err)
				}
				if i, _ := a.counts(); i-i0 != 1 {
					t.Errorf("%s: %d introspections, want 1 (no retry with the same token)", name, i-i0)
				}
				a.grant("soon-revoked", user)
			}
		}
	})

	t.Run("long token", func(t *testing.T) {
		// Microsoft's access tokens are well over a kilobyte: the POP3
		// AUTH line would pass 255 octets, so the response goes on a line
		// of its own after the server's "+" (RFC 5034 section 4).
		long := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789-_", 50)
		a.grant(long, user)
		for _, w := range secure {
			for _, mech := range []string{mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer} {
				mb, err := dial(w.url, mech, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: long}))
				if err != nil {
					t.Errorf("%s %s: %v\n%s", w.name, mech, err, d.Log())
					continue
				}
				check(w.name+" "+mech, mb)
			}
		}
	})

	t.Run("another user's token", func(t *testing.T) {
		for _, w := range secure {
			_, err := dial(w.url, "", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bobs-token"}))
			if !errors.Is(err, mailaccess.ErrAuth) {
				t.Errorf("%s: %v, want ErrAuth", w.name, err)
			}
		}
	})

	t.Run("refresh after refusal", func(t *testing.T) {
		// The program's cached access token has not expired but was
		// revoked: Dial refreshes it once and logs in again; a TokenCache
		// gives the new token to the next Dial.
		for _, w := range secure {
			for _, mech := range []string{mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer} {
				name := w.name + " " + mech
				revoked := fmt.Sprintf("revoked-%s-%s", w.name, mech)
				cache := unimail.NewTokenCache(nil, a.source(t, &oauth2.Token{AccessToken: revoked, Expiry: time.Now().Add(time.Hour)}))
				i0, g0 := a.counts()
				mb, err := dial(w.url, mech, cache)
				if err != nil {
					t.Errorf("%s: %v\n%s", name, err, d.Log())
					continue
				}
				check(name, mb)
				if i, g := a.counts(); i-i0 != 2 || g-g0 != 1 {
					t.Errorf("%s: %d introspections and %d grants, want 2 and 1", name, i-i0, g-g0)
				}
				mb, err = dial(w.url, mech, cache)
				if err != nil {
					t.Errorf("%s, second Dial: %v", name, err)
					continue
				}
				check(name, mb)
				if i, g := a.counts(); i-i0 != 3 || g-g0 != 1 {
					t.Errorf("%s, second Dial: %d introspections and %d grants in all, want 3 and 1", name, i-i0, g-g0)
				}
			}
		}
	})

	t.Run("refused twice", func(t *testing.T) {
		// Every token the source gives is unknown to the authority.
		for _, w := range secure {
			n := 0
			src := oauth2.ReuseTokenSource(nil, sourceFunc(func() (*oauth2.Token, error) {
				n++
				return &oauth2.Token{AccessToken: fmt.Sprintf("unknown-%d", n)}, nil
			}))
			i0, _ := a.counts()
			_, err := dial(w.url, "", src)
			if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) {
				t.Errorf("%s: %v, want a permanent ErrAuth", w.name, err)
			}
			if i, _ := a.counts(); i-i0 != 2 || n != 2 {
				t.Errorf("%s: %d introspections and %d tokens, want 2 and 2", w.name, i-i0, n)
			}
		}
	})
}

type sourceFunc func() (*oauth2.Token, error)

func (f sourceFunc) Token() (*oauth2.Token, error) { return f() }
