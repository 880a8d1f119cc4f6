package unimail_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

func TestDialAccountPatterns(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", "pw")
	for _, f := range []string{"INBOX", "Archive/2023", "Archive/2024", "Archive/2024/Q1", "Sent", "100%"} {
		s.Append("alice", f, []byte("Subject: "+f+"\r\n\r\nx\r\n"))
	}
	s.CreateFolder("alice", "Junk", `\Junk`)
	s.Append("alice", "Junk", []byte("Subject: spam\r\n\r\nx\r\n"))
	opts := &unimail.Options{DialOptions: mailaccess.DialOptions{
		Auth: mailaccess.Auth{Password: "pw"}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second,
	}}
	cases := []struct {
		path string
		want []string
	}{
		{"", []string{"INBOX", "100%", "Archive/2023", "Archive/2024", "Archive/2024/Q1", "Sent"}},
		{"/", []string{"INBOX", "100%", "Archive/2023", "Archive/2024", "Archive/2024/Q1", "Sent"}},
		{"/*", []string{"INBOX", "100%", "Archive/2023", "Archive/2024", "Archive/2024/Q1", "Sent"}},
		{"/%", []string{"INBOX", "100%", "Sent"}},
		{"/Archive/%", []string{"Archive/2023", "Archive/2024"}},
		{"/Archive/*", []string{"Archive/2023", "Archive/2024", "Archive/2024/Q1"}},
		{"/100%25", []string{"100%"}},
		{"/inbox", []string{"INBOX"}},
	}
	for _, c := range cases {
		a, sel, err := unimail.DialAccount(t.Context(), "imaps://alice@"+s.Addr+c.path, opts)
		if err != nil {
			t.Fatalf("DialAccount(%q): %v", c.path, err)
		}
		var got []string
		rep, err := (&mailaccess.Fetcher{}).FetchAccount(t.Context(), a, sel, func(_ context.Context, f mailaccess.FolderInfo, _ *mailaccess.Message) error {
			got = append(got, f.Name)
			return nil
		})
		if err != nil {
			t.Fatalf("%q: FetchAccount: %v", c.path, err)
		}
		if !slices.Equal(got, c.want) || len(rep.Folders) != len(c.want) {
			t.Errorf("%q: delivered from %q, want %q", c.path, got, c.want)
		}
		if rep.Account != "imap://alice@127.0.0.1/" {
			t.Errorf("Account = %q", rep.Account)
		}
	}
	// No match is a clear ErrNotFound.
	a, sel, err := unimail.DialAccount(t.Context(), "imaps://alice@"+s.Addr+"/Nothing/*", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&mailaccess.Fetcher{}).FetchAccount(t.Context(), a, sel, nil); !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("no match: %v, want ErrNotFound", err)
	}
	// POP3 has no folders; a folder pattern with CR or LF never parses.
	for _, u := range []string{"pop3s://alice@" + s.Addr, "imaps://alice@" + s.Addr + "/a%0D%0Ab"} {
		a, sel, err := unimail.DialAccount(t.Context(), u, opts)
		if err == nil || a != nil || sel != nil {
			t.Fatalf("DialAccount(%q) = %v, %v, %v", u, a, sel, err)
		}
	}
}

// TestDialAccountTokenSource: DialAccount logs in with an OAuth 2.0 token
// from Options.TokenSource, as Dial does.
func TestDialAccountTokenSource(t *testing.T) {
	s := imaptest.NewTLSServer(t, &imaptest.Config{Tokens: map[string]string{"token-of-bob": "bob"}})
	s.AddUser("bob", "")
	s.Append("bob", "Work", []byte("Subject: w\r\n\r\nw\r\n"))
	a, sel, err := unimail.DialAccount(t.Context(), "imaps://bob@"+s.Addr+"/Work", &unimail.Options{
		DialOptions: mailaccess.DialOptions{TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second},
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "token-of-bob"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := (&mailaccess.Fetcher{}).FetchAccount(t.Context(), a, sel, func(context.Context, mailaccess.FolderInfo, *mailaccess.Message) error { return nil })
	if err != nil || rep.Totals().Delivered != 1 {
		t.Fatalf("FetchAccount: %+v, %v", rep, err)
	}
	if slices.ContainsFunc(s.Commands(), func(c imaptest.Command) bool { return c.Name == "LOGIN" }) {
		t.Fatal("LOGIN sent instead of an OAuth mechanism")
	}
}
