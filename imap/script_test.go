package imap

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
)

// scriptServer is a scripted IMAP server on 127.0.0.1 for the cases that a
// real server cannot be made to produce: answers in an unusual order,
// answers that never come, responses go-imap cannot parse. It answers
// LOGIN, SELECT, CAPABILITY, NOOP and LOGOUT by itself with one message of
// UID 7 in a folder of UIDVALIDITY 42; handle gets every command first and
// returns false to leave it to those defaults.
type scriptServer struct {
	addr   string
	caps   string
	handle func(c *scriptConn, tag, verb, rest string) bool

	mu    sync.Mutex
	lines []string
}

// scriptConn is one client connection of a scriptServer.
type scriptConn struct {
	net.Conn
	r *bufio.Reader
}

// send writes s followed by CRLF.
func (c *scriptConn) send(s string) {
	c.Write([]byte(s + "\r\n"))
}

// readLine reads one line without its CRLF.
func (c *scriptConn) readLine() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

const scriptCaps = "IMAP4rev1 UIDPLUS MOVE IDLE"

func newScriptServer(t *testing.T, caps string, handle func(c *scriptConn, tag, verb, rest string) bool) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{addr: ln.Addr().String(), caps: caps, handle: handle}
	var wg sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, nc)
			connsMu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				s.serve(&scriptConn{Conn: nc, r: bufio.NewReader(nc)})
			}()
		}
	}()
	return s
}

func (s *scriptServer) serve(c *scriptConn) {
	c.send("* OK [CAPABILITY " + s.caps + "] script server ready")
	for {
		line, err := c.readLine()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		tag, rest, _ := strings.Cut(line, " ")
		verb, rest, _ := strings.Cut(rest, " ")
		verb = strings.ToUpper(verb)
		if verb == "UID" {
			var sub string
			sub, rest, _ = strings.Cut(rest, " ")
			verb += " " + strings.ToUpper(sub)
		}
		if s.handle != nil && s.handle(c, tag, verb, rest) {
			continue
		}
		switch verb {
		case "LOGIN":
			c.send(tag + " OK [CAPABILITY " + s.caps + "] logged in")
		case "CAPABILITY":
			c.send("* CAPABILITY " + s.caps)
			c.send(tag + " OK done")
		case "SELECT", "EXAMINE":
			c.send("* 1 EXISTS")
			c.send("* OK [UIDVALIDITY 42] ok")
			c.send("* OK [UIDNEXT 8] ok")
			c.send("* FLAGS (\\Seen \\Deleted)")
			c.send(tag + " OK [READ-WRITE] selected")
		case "NOOP":
			c.send(tag + " OK done")
		case "LOGOUT":
			c.send("* BYE bye")
			c.send(tag + " OK done")
			return
		default:
			c.send(tag + " BAD unknown command")
		}
	}
}

// commands returns the command lines received so far.
func (s *scriptServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}
