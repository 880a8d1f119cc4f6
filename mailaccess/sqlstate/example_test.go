package sqlstate_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

// The embedded default: the State in an SQLite file. A second run with
// KeepOnServer delivers nothing again, even from a new process, and
// reads only what it needs from the file.
func ExampleOpenSQLite() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi!\r\n"))

	dir, err := os.MkdirTemp("", "sqlstate-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	for run := 1; run <= 2; run++ {
		state, err := sqlstate.OpenSQLite(ctx, filepath.Join(dir, "mail.db"), nil)
		if err != nil {
			log.Fatal(err)
		}
		mb, err := imap.Dial(ctx, srv.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
			TLSConfig: srv.ClientTLSConfig(),
		}})
		if err != nil {
			log.Fatal(err)
		}
		f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: state}
		rep, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
			_, err := io.Copy(io.Discard, m.Body)
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("run %d: delivered %d, skipped %d\n", run, rep.Delivered, rep.Skipped)
		state.Close()
	}
	// Output:
	// run 1: delivered 1, skipped 0
	// run 2: delivered 0, skipped 1
}

// On PostgreSQL, several processes (on several machines) can share the
// State: each opens it with the same DSN.
func ExampleOpenPostgres() {
	ctx := context.Background()
	state, err := sqlstate.OpenPostgres(ctx, os.Getenv("MAIL_STATE_DSN"), nil) // postgres://user:password@host/mail
	if err != nil {
		log.Fatal(err) // matches mailaccess.ErrState; never shows the password
	}
	defer state.Close()
	_ = &mailaccess.Fetcher{Retention: mailaccess.KeepFor(14 * 24 * time.Hour), State: state}
}
