package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// TestCredentials: an account logs in with what Options.Credentials
// returns for it: here an OAuth 2.0 token (XOAUTH2 or OAUTHBEARER),
// asked for before every session. A Credentials callback that fails is
// reported as kind "credentials" and retried; its text is kept, the
// password of the run is not.
func TestCredentials(t *testing.T) {
	srv, addr, _ := imapServer(t, &imaptest.Config{Tokens: map[string]string{"token-for-u0": "u0"}}, "u", 1, 2)
	var calls, failures atomic.Int32
	c := newCollector()
	opts := testOptions(c.handle)
	opts.Credentials = func(ctx context.Context, a fleet.Account) (mailaccess.Auth, error) {
		calls.Add(1)
		if a.ID == "broken" {
			failures.Add(1)
			return mailaccess.Auth{}, errors.New("the secret store is sealed")
		}
		return mailaccess.Auth{Token: func(context.Context) (string, error) { return "token-for-u0", nil }}, nil
	}
	f := databases(t)[0].open(t, opts)
	for _, a := range []fleet.Account{
		{ID: "oauth", URL: fmt.Sprintf("imap://u0@%s/INBOX", addr), Handler: "collect", Every: 200 * time.Millisecond},
		{ID: "broken", URL: fmt.Sprintf("imap://u0@%s/INBOX", addr), Handler: "collect", Every: 200 * time.Millisecond},
	} {
		if err := f.Add(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the token account's messages and two failed credentials", func() bool {
		return c.count("oauth") == 2 && failures.Load() >= 2 && f.Stats().Errors["credentials"] >= 2
	})
	var sawToken bool
	for _, cmd := range srv.Commands() {
		if cmd.Name == "AUTHENTICATE" && (strings.Contains(cmd.Line, "XOAUTH2") || strings.Contains(cmd.Line, "OAUTHBEARER")) {
			sawToken = true
		}
		if cmd.Name == "LOGIN" {
			t.Errorf("LOGIN sent for a token account")
		}
	}
	if !sawToken {
		t.Error("no OAuth authentication on the server")
	}
	as, err := f.Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.ID != "broken" {
			continue
		}
		if a.Stopped || a.LastErrorKind != "credentials" || !strings.Contains(a.LastErrorText, "sealed") || a.Failures < 1 {
			t.Errorf("broken account = %+v; want a retried credentials error", a)
		}
	}
}
