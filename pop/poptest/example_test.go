package poptest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"

	"github.com/unimail/unimail/pop/poptest"
)

// cmd sends one command line and returns the status line of the reply.
func cmd(c *textproto.Conn, line string) string {
	if err := c.PrintfLine("%s", line); err != nil {
		return err.Error()
	}
	s, err := c.ReadLine()
	if err != nil {
		return err.Error()
	}
	return s
}

func ExampleNewServer() {
	// In a test, write srv := poptest.NewServer(t, cfg): it starts the
	// server and closes it with t.Cleanup. An example has no t, so it
	// starts and closes the server itself.
	srv := poptest.NewUnstartedServer(nil)
	srv.Start()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: hello\r\n\r\n.signature\r\n"))

	c, err := textproto.Dial("tcp", srv.Addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	greeting, _ := c.ReadLine()
	fmt.Println(greeting)
	fmt.Println(cmd(c, "USER alice"))
	fmt.Println(cmd(c, "PASS secret"))
	fmt.Println(cmd(c, "UIDL 1"))
	fmt.Println(cmd(c, "RETR 1"))
	body, _ := io.ReadAll(c.DotReader()) // undoes the dot-stuffing (and turns CRLF into LF)
	fmt.Printf("%q\n", body)
	fmt.Println(cmd(c, "DELE 1"))
	fmt.Println(cmd(c, "QUIT"))
	fmt.Println(len(srv.Messages("alice")), "messages left")
	// Output:
	// +OK poptest POP3 server ready
	// +OK send PASS
	// +OK alice has 1 messages (30 octets)
	// +OK 1 uid-1
	// +OK 30 octets
	// "Subject: hello\n\n.signature\n"
	// +OK message 1 deleted
	// +OK poptest signing off (1 messages deleted)
	// 0 messages left
}

// The fault hook makes the server commit a QUIT and drop the connection
// before the client sees +OK: the client cannot know whether its deletions
// happened.
func ExampleFault() {
	srv := poptest.NewUnstartedServer(&poptest.Config{
		Fault: func(c poptest.Command) poptest.Fault {
			if c.Name == "QUIT" {
				return poptest.Fault{DropAfterExec: true}
			}
			return poptest.Fault{}
		},
	})
	srv.Start()
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: one\r\n\r\n"))

	c, err := textproto.Dial("tcp", srv.Addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.ReadLine()
	cmd(c, "USER alice")
	cmd(c, "PASS secret")
	fmt.Println(cmd(c, "DELE 1"))
	fmt.Println(cmd(c, "QUIT"))
	fmt.Println(len(srv.Messages("alice")), "messages left")
	for _, c := range srv.Commands() {
		fmt.Println(c)
	}
	// Output:
	// +OK message 1 deleted
	// EOF
	// 0 messages left
	// USER alice
	// PASS <redacted>
	// DELE 1
	// QUIT
}

// Outside a test (a demonstration, a local development server), create the
// server with NewUnstartedServer, fill it, Start it (or StartTLS for
// implicit TLS, dialled with ClientTLSConfig), dial Addr, and Close it.
func ExampleNewUnstartedServer() {
	srv := poptest.NewUnstartedServer(nil)
	defer srv.Close()
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: hello\r\n\r\nHi Alice.\r\n"))
	srv.Start() // cleartext on 127.0.0.1, STLS offered

	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(line string) {
		if line != "" {
			fmt.Fprintf(conn, "%s\r\n", line)
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(strings.TrimRight(reply, "\r\n"))
	}
	send("") // the greeting
	send("USER alice")
	send("PASS secret")
	send("STAT")
	send("QUIT")
	// Output:
	// +OK poptest POP3 server ready
	// +OK send PASS
	// +OK alice has 1 messages (29 octets)
	// +OK 1 29
	// +OK poptest signing off (0 messages deleted)
}
