package mailaccess_test

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
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// A Fetcher delivers the new messages of a mailbox to a handler and then
// applies the retention. Here: classic POP, each message deleted from the
// server once the handler has it and the state has recorded it.
func ExampleFetcher_Fetch() {
	srv := poptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: hello\r\n\r\nHi!\r\n"))
	srv.AddMessage("alice", []byte("Subject: again\r\n\r\nHi again!\r\n"))

	ctx := context.Background()
	mb, err := pop.Dial(ctx, srv.Addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
			TLSConfig: srv.ClientTLSConfig(),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	rep, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
		r, err := m.Parse()
		if err != nil {
			return err
		}
		subject, _ := r.Header.Subject()
		fmt.Println("got:", subject)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("delivered %d, deleted %d, left on the server %d\n", rep.Delivered, rep.Deleted, len(srv.Messages("alice")))
	// Output:
	// got: hello
	// got: again
	// delivered 2, deleted 2, left on the server 0
}

// With KeepOnServer the mail stays on the server, and the State makes sure
// that the next run delivers only what is new. A FileState keeps that
// memory across processes.
func ExampleKeepOnServer() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("Subject: one\r\n\r\n1\r\n"))

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	dial := func() mailaccess.Mailbox {
		mb, err := imap.Dial(ctx, srv.Addr, &imap.Options{
			DialOptions: mailaccess.DialOptions{
				Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
				TLSConfig: srv.ClientTLSConfig(),
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		return mb
	}
	runOnce := func() {
		state, err := mailaccess.OpenFileState(filepath.Join(dir, "state"))
		if err != nil {
			log.Fatal(err)
		}
		defer state.Close()
		f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: state}
		rep, err := f.Fetch(ctx, dial(), func(ctx context.Context, m *mailaccess.Message) error {
			_, err := io.Copy(io.Discard, m.Body)
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("delivered %d, already delivered %d\n", rep.Delivered, rep.Skipped)
	}
	runOnce()
	srv.Append("alice", "INBOX", []byte("Subject: two\r\n\r\n2\r\n"))
	runOnce()
	fmt.Println("on the server:", len(srv.Messages("alice", "INBOX")))
	// Output:
	// delivered 1, already delivered 0
	// delivered 1, already delivered 1
	// on the server: 2
}

func ExampleParseRetention() {
	for _, s := range []string{"keep", "Delete", "keep-for=2w", "keep-for=336h", "move=Archive"} {
		r, err := mailaccess.ParseRetention(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-14s -> %-13s period=%v folder=%q\n", s, r, r.Period(), r.Folder())
	}
	fmt.Println(mailaccess.KeepFor(336*time.Hour) == mailaccess.KeepFor(14*24*time.Hour))
	_, err := mailaccess.ParseRetention("keep-for=2 weeks")
	fmt.Println(err)
	// Output:
	// keep           -> keep          period=0s folder=""
	// Delete         -> delete        period=0s folder=""
	// keep-for=2w    -> keep-for=14d  period=336h0m0s folder=""
	// keep-for=336h  -> keep-for=14d  period=336h0m0s folder=""
	// move=Archive   -> move=Archive  period=0s folder="Archive"
	// true
	// parse retention: invalid argument: "keep-for=2 weeks": bad duration: want days (14d), weeks (2w) or a Go duration (336h)
}

// Run keeps a mailbox drained: it fetches, then waits for new mail (IMAP
// IDLE; POP3 polls every RunOptions.Interval), and reconnects after
// errors. Waiting says when the server is watching.
func ExampleFetcher_Run() {
	srv := imaptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	srv.AddUser("alice", "secret")

	ctx, cancel := context.WithCancel(context.Background())
	dial := func(ctx context.Context) (mailaccess.Mailbox, error) {
		return imap.Dial(ctx, srv.Addr, &imap.Options{
			DialOptions: mailaccess.DialOptions{
				Auth:      mailaccess.Auth{Username: "alice", Password: "secret"},
				TLSConfig: srv.ClientTLSConfig(),
			},
		})
	}
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	opts := &mailaccess.RunOptions{Waiting: func(mailbox string, push bool) {
		fmt.Println("watching", mailbox, "push:", push)
		// Mail that arrives from now on wakes Run at once.
		srv.Append("alice", "INBOX", []byte("Subject: pushed\r\n\r\nnew\r\n"))
	}}
	err := f.Run(ctx, dial, func(ctx context.Context, m *mailaccess.Message) error {
		r, err := m.Parse()
		if err != nil {
			return err
		}
		subject, _ := r.Header.Subject()
		fmt.Println("new mail:", subject)
		cancel() // one is enough for this example
		return nil
	}, opts)
	fmt.Println(err)
	// Output:
	// watching imap://alice@127.0.0.1/INBOX push: true
	// new mail: pushed
	// context canceled
}
