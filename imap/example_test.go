package imap_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// Fetch every message of INBOX and delete it from the server once it is
// safely taken. The server here is an in-process test server; against a
// real one, pass its "host:993" and leave TLSConfig nil.
func Example() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi Alice!\r\n"))
	srv.Append("alice", "INBOX", []byte("Subject: again\r\n\r\nHi again!\r\n"))
	srv.StartTLS()
	defer srv.Close()

	ctx := context.Background()
	mb, err := imap.Dial(ctx, srv.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{
		Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
		TLSConfig: srv.ClientTLSConfig(), // trusts the test certificate
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer mb.Abort() // a no-op after Close; drops the marks on early return

	list, err := mb.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range list {
		r, err := mb.Open(ctx, m.UID)
		if err != nil {
			log.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d bytes: %q\n", m.Size, raw)
		// A mark only: nothing is deleted before Close.
		if err := mb.Delete(ctx, m.UID); err != nil {
			log.Fatal(err)
		}
	}
	// UID STORE +FLAGS.SILENT (\Deleted) and UID EXPUNGE of exactly those
	// messages, then LOGOUT.
	if err := mb.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(srv.Messages("alice", "INBOX")), "messages left on the server")
	// Output:
	// 29 bytes: "Subject: hello\r\n\r\nHi Alice!\r\n"
	// 29 bytes: "Subject: again\r\n\r\nHi again!\r\n"
	// 0 messages left on the server
}
