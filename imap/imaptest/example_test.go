package imaptest_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/imap/imaptest"
)

// A test starts a server with imaptest.NewServer(t, cfg) or
// NewTLSServer(t, cfg), which Close themselves when the test ends; outside
// a test, NewUnstartedServer and Close do the same.
func Example() {
	srv := imaptest.NewUnstartedServer(nil)
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("From: bob@example.com\r\nSubject: Hello\r\n\r\nHi Alice.\r\n"))
	srv.StartTLS() // IMAPS; Start would offer STARTTLS instead

	c, err := imapclient.DialTLS(srv.Addr, &imapclient.Options{TLSConfig: srv.ClientTLSConfig()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "secret").Wait(); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		log.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{
		UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("UID %d, %d bytes: %q\n", m.UID, m.RFC822Size, m.FindBodySection(body))
	}
	if err := c.Logout().Wait(); err != nil {
		log.Fatal(err)
	}

	fmt.Println("flags after BODY.PEEK[]:", srv.Flags("alice", "INBOX"))
	for _, cmd := range srv.Commands() {
		fmt.Println(cmd.Line)
	}
	// Output:
	// UID 1, 52 bytes: "From: bob@example.com\r\nSubject: Hello\r\n\r\nHi Alice.\r\n"
	// flags after BODY.PEEK[]: [[]]
	// T1 LOGIN [redacted]
	// T2 SELECT INBOX
	// T3 UID FETCH 1 (UID RFC822.SIZE BODY.PEEK[])
	// T4 LOGOUT
}

// A fault hook makes the server refuse UID EXPUNGE, as a server in trouble
// would; the message stays.
func ExampleFault() {
	srv := imaptest.NewUnstartedServer(&imaptest.Config{
		Fault: func(cmd imaptest.Command) imaptest.Fault {
			if cmd.Name == "UID EXPUNGE" {
				return imaptest.Fault{No: "[UNAVAILABLE] Try again later"}
			}
			return imaptest.Fault{}
		},
	})
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AppendMessage("alice", "INBOX", []byte("Subject: old\r\n\r\nx\r\n"), []string{string(imap.FlagDeleted)}, time.Time{})
	srv.Start()

	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "secret").Wait(); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		log.Fatal(err)
	}
	err = c.UIDExpunge(imap.UIDSetNum(1)).Close()
	fmt.Println("UID EXPUNGE:", err)
	fmt.Println("UIDs still on the server:", srv.UIDs("alice", "INBOX"))
	// Output:
	// UID EXPUNGE: imap: NO [UNAVAILABLE] Try again later
	// UIDs still on the server: [1]
}

// Outside a test (a demonstration, a local development server), create the
// server with NewUnstartedServer, fill it, StartTLS it (or Start for
// cleartext with STARTTLS), dial Addr, trusting the server's self-signed
// certificate with ClientTLSConfig, and Close it. This client speaks IMAP
// by hand and prints the greeting, the EXISTS line and how each command
// completed.
func ExampleNewUnstartedServer() {
	srv := imaptest.NewUnstartedServer(nil)
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.Append("alice", "INBOX", []byte("Subject: hello\r\n\r\nHi Alice.\r\n"))
	srv.StartTLS() // implicit TLS (IMAPS) on 127.0.0.1

	conn, err := tls.Dial("tcp", srv.Addr, srv.ClientTLSConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.TrimRight(greeting, "\r\n"))
	for _, c := range []string{"a LOGIN alice secret", "b SELECT INBOX", "c LOGOUT"} {
		fmt.Fprintf(conn, "%s\r\n", c)
		tag := strings.Fields(c)[0]
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				fmt.Println(err)
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if strings.HasSuffix(line, " EXISTS") {
				fmt.Println(line)
			}
			if f := strings.Fields(line); len(f) > 1 && f[0] == tag {
				fmt.Println(f[0], f[1]) // the tag and OK, NO or BAD
				break
			}
		}
	}
	// Output:
	// * OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN] IMAP server ready
	// a OK
	// * 1 EXISTS
	// b OK
	// c OK
}
