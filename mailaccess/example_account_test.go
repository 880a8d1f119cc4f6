package mailaccess_test

import (
	"context"
	"fmt"
	"log"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// FetchAccount fetches every folder that a Selection picks, one after
// the other on one connection, each with its own records in the State.
// \Junk and \Trash are left out unless asked for.
func ExampleFetcher_FetchAccount() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.CreateFolder("alice", "Junk", `\Junk`)
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi!\r\n"))
	srv.Append("alice", "Archive/2024", []byte("Subject: old\r\n\r\nOld.\r\n"))
	srv.Append("alice", "Archive/2024/Q1", []byte("Subject: older\r\n\r\nOlder.\r\n"))
	srv.Append("alice", "Junk", []byte("Subject: spam\r\n\r\nBuy!\r\n"))

	ctx := context.Background()
	acct, err := imap.DialAccount(ctx, srv.Addr, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
			TLSConfig: srv.ClientTLSConfig(),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	sel := &mailaccess.Selection{Include: []string{"*"}, Exclude: []string{"Archive/*/%"}}
	rep, err := f.FetchAccount(ctx, acct, sel, func(ctx context.Context, folder mailaccess.FolderInfo, m *mailaccess.Message) error {
		r, err := m.Parse()
		if err != nil {
			return err
		}
		subject, _ := r.Header.Subject()
		fmt.Printf("%s: %s\n", folder.Name, subject)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d folders, %d delivered\n", len(rep.Folders), rep.Totals().Delivered)
	// Output:
	// INBOX: hello
	// Archive/2024: old
	// 2 folders, 2 delivered
}
