package pop_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// Example downloads every message of a POP3 mail drop and deletes it from
// the server, committing the deletions with Close (QUIT). The server is
// the in-process test server of package poptest; a real one would be
// reached at "pop.example.com:995" with the zero Options' implicit TLS.
func Example() {
	// In a test, poptest.NewServer(t, nil) starts the server and closes it
	// with t.Cleanup; an example has no t.
	srv := poptest.NewUnstartedServer(nil)
	srv.Start()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: first\r\n\r\nHello\r\n"))
	srv.AddMessage("alice", []byte("Subject: second\r\n\r\n.dot-stuffed on the wire\r\n"))

	ctx := context.Background()
	mb, err := pop.Dial(ctx, srv.Addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
			Security:  mailaccess.SecurityStartTLS,
			TLSConfig: srv.ClientTLSConfig(),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer mb.Abort() // rolls the deletions back unless Close committed them

	fmt.Println(mb.Name())
	list, err := mb.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var done []mailaccess.UID
	for _, info := range list {
		r, err := mb.Open(ctx, info.UID)
		if err != nil {
			log.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d octets, %q\n", info.UID, info.Size, raw)
		done = append(done, info.UID)
	}
	if err := mb.Delete(ctx, done...); err != nil {
		log.Fatal(err)
	}
	if err := mb.Close(ctx); err != nil {
		log.Fatal(err) // ErrCommitFailed or ErrCommitUnknown: see the package doc
	}
	fmt.Println("left on the server:", len(srv.Messages("alice")))
	// Output:
	// pop3://alice@127.0.0.1
	// uid-1: 25 octets, "Subject: first\r\n\r\nHello\r\n"
	// uid-2: 45 octets, "Subject: second\r\n\r\n.dot-stuffed on the wire\r\n"
	// left on the server: 0
}
