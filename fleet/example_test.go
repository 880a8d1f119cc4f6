package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// A fleet on an SQLite file keeps an IMAP account fetched. The server
// here is an in-process one; a program names its real servers.
func Example() {
	srv := imaptest.NewUnstartedServer(nil)
	defer srv.Close()
	srv.AddUser("alice", "alice-password")
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi\r\n"))
	srv.StartTLS()

	dir, err := os.MkdirTemp("", "fleet-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	got := make(chan string, 1)
	ctx := context.Background()
	f, err := fleet.OpenSQLite(ctx, filepath.Join(dir, "fleet.db"), &fleet.Options{
		// Credentials come from the application's secret store, never
		// from the fleet's database.
		Credentials: func(ctx context.Context, a fleet.Account) (mailaccess.Auth, error) {
			return mailaccess.Auth{Password: "alice-password"}, nil
		},
		Handlers: map[string]mailaccess.Handler{
			"print": func(ctx context.Context, m *mailaccess.Message) error {
				b, err := io.ReadAll(m.Body)
				if err != nil {
					return err
				}
				id, _ := fleet.AccountID(ctx)
				got <- fmt.Sprintf("%s: %d bytes", id, len(b))
				return nil
			},
		},
		Dial:         &unimail.Options{DialOptions: mailaccess.DialOptions{TLSConfig: srv.ClientTLSConfig()}},
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	err = f.Add(ctx, fleet.Account{
		ID:        "alice",
		URL:       "imaps://alice@" + srv.Addr + "/INBOX",
		Retention: mailaccess.KeepOnServer,
		Handler:   "print",
		Every:     time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	if err := f.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: alice: 22 bytes
}
