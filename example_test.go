package unimail_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/endpoints"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// This example is the README's: it fetches new mail from an IMAP folder,
// keeps each message on the server for 14 days after its first delivery,
// and remembers what it delivered in a file, so that the second run
// delivers nothing again. (The server here is the in-process one of
// package imaptest, started without a test.)
func Example() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi!\r\n"))
	dir, err := os.MkdirTemp("", "unimail-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	for range 2 {
		opts := &unimail.Options{}
		opts.Auth.Password = "secret"
		opts.TLSConfig = srv.ClientTLSConfig()
		mb, err := unimail.Dial(ctx, "imaps://alice@"+srv.Addr+"/INBOX", opts)
		if err != nil {
			log.Fatal(err) // mb is nil: nothing to close
		}
		state, err := mailaccess.OpenFileState(filepath.Join(dir, "mail.state"))
		if err != nil {
			log.Fatal(err)
		}
		f := &mailaccess.Fetcher{Retention: mailaccess.KeepFor(14 * 24 * time.Hour), State: state}
		report, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
			// nil means "I have it": return it only once the message is
			// safely stored.
			_, err := io.Copy(io.Discard, m.Body)
			return err
		})
		state.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("delivered %d, already delivered %d\n", report.Delivered, report.Skipped)
	}
	// Output:
	// delivered 1, already delivered 0
	// delivered 0, already delivered 1
}

// This example reads a Microsoft 365 mailbox over POP3 with OAuth 2.0. The
// refresh token comes from an earlier authorization of the program (for
// instance oauth2.Config.DeviceAuth and DeviceAccessToken, with the
// offline_access scope); conf.TokenSource turns it into access tokens and
// refreshes them when they expire. Microsoft's POP3 takes XOAUTH2 only, so
// Dial picks it; the long token goes on a line of its own after
// "AUTH XOAUTH2", as Microsoft expects.
func ExampleDial_oauth2() {
	ctx := context.Background()
	conf := &oauth2.Config{
		ClientID: "00000000-0000-0000-0000-000000000000", // the app registration
		Endpoint: endpoints.AzureAD("common"),
		Scopes:   []string{"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"},
	}
	saved := &oauth2.Token{RefreshToken: os.Getenv("MAIL_REFRESH_TOKEN")}

	// One TokenCache per account, shared by every Dial: when the server
	// refuses a token (revoked before it expired), Dial refreshes it once
	// and logs in again, and later Dials get the new token.
	tokens := unimail.NewTokenCache(nil, conf.TokenSource(ctx, saved))
	mb, err := unimail.Dial(ctx, "pop3s://outlook.office365.com", &unimail.Options{
		DialOptions: mailaccess.DialOptions{
			Auth: mailaccess.Auth{Username: "alice@contoso.com"},
		},
		TokenSource: tokens,
	})
	if err != nil {
		log.Fatal(err) // mailaccess.ErrAuth when the token was refused twice
	}
	defer mb.Close(ctx)
	list, err := mb.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(list), "messages")
}

// This example shows the refresh after a refusal end to end, against the
// in-process IMAP server of package imaptest and a token endpoint of its
// own: the program's saved access token has not expired but was revoked,
// so the server refuses it; Dial gets a new one with the refresh token and
// logs in with it.
func ExampleNewTokenCache() {
	imapSrv := imaptest.NewUnstartedServer(nil)
	imapSrv.StartTLS()
	defer imapSrv.Close()
	imapSrv.AddUser("alice", "unused-password")
	imapSrv.Append("alice", "INBOX", []byte("Subject: hi\r\n\r\nHello\r\n"))
	imapSrv.AddToken("fresh-token", "alice") // the server accepts it, not "revoked-token"

	// The token endpoint grants "fresh-token" for the refresh token.
	var grants atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "fresh-token", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokenSrv.Close()

	ctx := context.Background()
	conf := &oauth2.Config{ClientID: "example", Endpoint: oauth2.Endpoint{TokenURL: tokenSrv.URL, AuthStyle: oauth2.AuthStyleInParams}}
	saved := &oauth2.Token{AccessToken: "revoked-token", RefreshToken: "refresh", Expiry: time.Now().Add(time.Hour)}
	tokens := unimail.NewTokenCache(nil, conf.TokenSource(ctx, saved))
	fmt.Println(tokens) // never shows the token

	opts := &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: imapSrv.ClientTLSConfig()}, TokenSource: tokens}
	for range 2 {
		mb, err := unimail.Dial(ctx, "imaps://alice@"+imapSrv.Addr+"/INBOX", opts)
		if err != nil {
			log.Fatal(err)
		}
		list, err := mb.List(ctx)
		if err != nil {
			log.Fatal(err)
		}
		mb.Close(ctx)
		fmt.Printf("%d message; token endpoint asked %d time(s)\n", len(list), grants.Load())
	}

	var logins int
	for _, c := range imapSrv.Commands() {
		if c.Name == "AUTHENTICATE" {
			logins++
		}
	}
	fmt.Println(logins, "logins")
	// Output:
	// unimail.TokenCache{no token}
	// 1 message; token endpoint asked 1 time(s)
	// 1 message; token endpoint asked 1 time(s)
	// 3 logins
}
