package poptest

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redacted replaces secrets in the command log and in the fault hook's
// Command.
const redacted = "<redacted>"

var (
	errTooLong = errors.New("line too long")
	errAbuse   = errors.New("line without end")
)

// session is one connection.
type session struct {
	s   *Server
	id  int
	raw net.Conn // the transport, closed to end the session
	br  *bufio.Reader
	bw  *bufio.Writer
	out replyWriter
	tls bool
	seq int

	closeOnce sync.Once
	done      chan struct{} // closed when the connection is closed

	// AUTHORIZATION state
	timestamp string // APOP greeting timestamp
	userArg   string // name given by USER, awaiting PASS

	// TRANSACTION state; user != "" means logged in and holding the lock
	user      string
	msgs      []*message
	deleted   []bool
	retrieved []bool
}

// newSession returns a session that talks on c (raw, or TLS over raw).
func newSession(s *Server, id int, c, raw net.Conn) *session {
	sess := &session{s: s, id: id, raw: raw, done: make(chan struct{})}
	sess.br = bufio.NewReader(c)
	sess.bw = bufio.NewWriter(c)
	sess.out.w = sess.bw
	return sess
}

// close closes the connection; safe to call more than once and from other
// goroutines.
func (c *session) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.raw.Close()
	})
}

// serve runs the session on an accepted connection, first doing the TLS
// handshake for implicit TLS.
func (c *session) serve(implicit bool) {
	if implicit {
		tc := tls.Server(c.raw, c.s.tlsConfig)
		if err := tc.Handshake(); err != nil {
			c.end()
			return
		}
		c.setConn(tc)
	}
	c.serveConn(implicit)
}

// setConn makes the session talk on conn, a TLS connection over c.raw.
func (c *session) setConn(conn net.Conn) {
	c.br.Reset(conn)
	c.bw.Reset(conn)
}

// end releases the maildrop lock without committing (unless QUIT already
// did), then closes the connection. The lock goes first so that a client
// that sees the connection close can log in again at once.
func (c *session) end() {
	if c.user != "" {
		c.s.unlock(c.user, nil)
		c.user = ""
	}
	c.close()
	c.s.unregister(c)
}

func (c *session) serveConn(isTLS bool) {
	defer c.end()
	c.tls = isTLS
	if !c.greet() {
		return
	}
	for {
		line, err := c.readLine(MaxLineLength)
		switch {
		case errors.Is(err, errTooLong):
			if !c.reply("-ERR line too long\r\n") {
				return
			}
			continue
		case err != nil:
			return
		}
		if bad := checkLine(line); bad != "" {
			if !c.reply("-ERR " + bad + "\r\n") {
				return
			}
			continue
		}
		if !c.command(string(line[:len(line)-2])) {
			return
		}
	}
}

// greet sends the greeting, subject to the fault hook, and reports whether
// the session goes on.
func (c *session) greet() bool {
	f := c.s.logCommand(Command{Conn: c.id})
	if !c.stall(f.Stall) || f.Drop {
		return false
	}
	c.out.reset(f)
	refuse := false
	switch {
	case f.Err != "":
		c.out.WriteString("-ERR " + f.Err + "\r\n")
		refuse = true
	case f.Reply != "":
		c.out.WriteString(f.Reply)
	default:
		text := "+OK poptest POP3 server ready"
		if c.s.cfg.APOP {
			c.timestamp = fmt.Sprintf("<%d.%d.%d@poptest>", os.Getpid(), c.id, time.Now().UnixNano())
			text += " " + c.timestamp
		}
		c.out.WriteString(text + "\r\n")
	}
	return c.flush() && !refuse && !c.out.drops()
}

// stall waits d, or until the connection is closed; it reports whether the
// connection is still open.
func (c *session) stall(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// reply sends a reply outside any fault and reports whether it was sent.
func (c *session) reply(s string) bool {
	c.out.reset(Fault{})
	c.out.WriteString(s)
	return c.flush()
}

// flush sends what the reply writer let through and reports whether the
// connection is still usable.
func (c *session) flush() bool {
	err := c.bw.Flush()
	return err == nil && c.out.err == nil
}

// readLine reads one line, LF included, of at most limit bytes.
func (c *session) readLine(limit int) ([]byte, error) {
	var line []byte
	total := 0
	for {
		chunk, err := c.br.ReadSlice('\n')
		total += len(chunk)
		if total <= limit {
			line = append(line, chunk...)
		}
		switch {
		case err == nil:
			if total > limit {
				return nil, errTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if total > maxDiscard {
				return nil, errAbuse
			}
		default:
			return nil, err // EOF in mid-line: the client went away
		}
	}
}

// checkLine returns why line, which ends in LF, is not a well-formed
// command line, or "".
func checkLine(line []byte) string {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "command line must end with CRLF"
	}
	body := line[:len(line)-2]
	if bytes.IndexByte(body, '\r') >= 0 || bytes.IndexByte(body, 0) >= 0 {
		return "CR or NUL in command line"
	}
	return ""
}

// parseCommand splits a command line into its verb and arguments.
func parseCommand(line string) (name string, args []string) {
	name, rest, _ := strings.Cut(line, " ")
	name = strings.ToUpper(name)
	switch name {
	case "USER", "PASS":
		if rest != "" {
			args = []string{rest}
		}
	case "APOP":
		if i := strings.LastIndexByte(rest, ' '); i > 0 {
			args = []string{rest[:i], rest[i+1:]}
		} else if rest != "" {
			args = []string{rest}
		}
	default:
		args = strings.Fields(rest)
	}
	return name, args
}

// redact returns args with secrets replaced, for the log.
func redact(name string, args []string) []string {
	out := append([]string(nil), args...)
	switch name {
	case "PASS":
		for i := range out {
			out[i] = redacted
		}
	case "APOP", "AUTH":
		for i := 1; i < len(out); i++ {
			out[i] = redacted
		}
	}
	return out
}

// command handles one command line (CRLF removed) and reports whether the
// session goes on.
func (c *session) command(line string) bool {
	name, args := parseCommand(line)
	c.seq++
	f := c.s.logCommand(Command{Conn: c.id, Seq: c.seq, Name: name, Args: redact(name, args), User: c.user})
	if !c.stall(f.Stall) || f.Drop {
		return false
	}
	c.out.reset(f)
	var quit bool
	switch {
	case f.Err != "":
		c.out.WriteString("-ERR " + f.Err + "\r\n")
		quit = name == "QUIT"
	case f.Reply != "":
		c.out.WriteString(f.Reply)
		quit = name == "QUIT"
	default:
		quit = c.execute(name, args)
	}
	return c.flush() && !quit && !c.out.drops()
}

// execute runs one command and writes its reply to c.out. It reports
// whether the session ends (QUIT, or STLS whose handshake failed).
func (c *session) execute(name string, args []string) (end bool) {
	cfg := &c.s.cfg
	auth := c.user == ""
	switch name {
	case "CAPA":
		if cfg.NoCAPA {
			break
		}
		if len(args) != 0 {
			c.err("", "CAPA takes no arguments")
			return false
		}
		c.capa()
		return false
	case "QUIT":
		if len(args) != 0 {
			c.err("", "QUIT takes no arguments")
			return false
		}
		c.quit()
		return true
	case "STLS":
		if !auth {
			c.err("", "STLS is not valid after login")
			return false
		}
		return c.stls(args)
	case "USER", "PASS", "APOP", "AUTH":
		if name == "AUTH" && cfg.NoSASL || name == "APOP" && !cfg.APOP || (name == "USER" || name == "PASS") && cfg.NoUSER {
			break
		}
		if !auth {
			c.err("", "already logged in")
			return false
		}
		if cfg.RequireTLSForAuth && !c.tls {
			c.err("AUTH", "plaintext authentication disallowed on non-secure connections, use STLS")
			return false
		}
		switch name {
		case "USER":
			c.cmdUSER(args)
		case "PASS":
			c.cmdPASS(args)
		case "APOP":
			c.cmdAPOP(args)
		case "AUTH":
			c.cmdAUTH(args)
		}
		return false
	case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET":
		if name == "UIDL" && cfg.NoUIDL || name == "TOP" && cfg.NoTOP {
			break
		}
		if auth {
			c.err("", "not logged in")
			return false
		}
		c.transaction(name, args)
		return false
	}
	c.err("", "unknown command")
	return false
}

// err writes "-ERR [code] text". The code is left out by a server without
// CAPA, which cannot announce RESP-CODES.
func (c *session) err(code, text string) {
	if code != "" && !c.s.cfg.NoCAPA {
		text = "[" + code + "] " + text
	}
	c.out.WriteString("-ERR " + text + "\r\n")
}

func (c *session) ok(text string) {
	if text != "" {
		text = " " + text
	}
	c.out.WriteString("+OK" + text + "\r\n")
}

func (c *session) stlsOffered() bool { return !c.tls && !c.s.cfg.NoSTLS && c.user == "" }

func (c *session) authHidden() bool { return c.s.cfg.RequireTLSForAuth && !c.tls }

func (c *session) capa() {
	cfg := &c.s.cfg
	var b strings.Builder
	b.WriteString("+OK capability list follows\r\n")
	add := func(s string) { b.WriteString(s + "\r\n") }
	if !cfg.NoUSER && !c.authHidden() {
		add("USER")
	}
	if !cfg.NoTOP {
		add("TOP")
	}
	if !cfg.NoUIDL {
		add("UIDL")
	}
	if !cfg.NoPipelining {
		add("PIPELINING")
	}
	add("RESP-CODES")
	add("AUTH-RESP-CODE")
	if !cfg.NoSASL && !c.authHidden() {
		add("SASL " + strings.Join(c.s.mechs, " "))
	}
	if c.stlsOffered() {
		add("STLS")
	}
	if cfg.Expire != "" {
		add("EXPIRE " + cfg.Expire)
	}
	if cfg.LoginDelay > 0 {
		add("LOGIN-DELAY " + strconv.Itoa(cfg.LoginDelay))
	}
	add("IMPLEMENTATION poptest")
	add(".")
	c.out.WriteString(b.String())
}

// stls answers STLS and, unless a fault cuts the reply, does the TLS
// handshake. Bytes the client sent after STLS and before the handshake are
// thrown away (RFC 2595 section 4: they could be injected by an attacker).
func (c *session) stls(args []string) (end bool) {
	if c.tls {
		c.err("", "already using TLS")
		return false
	}
	if c.s.cfg.NoSTLS {
		c.err("", "unknown command")
		return false
	}
	if len(args) != 0 {
		c.err("", "STLS takes no arguments")
		return false
	}
	c.ok("begin TLS negotiation")
	if c.out.drops() || !c.flush() {
		return true
	}
	tc := tls.Server(c.raw, c.s.tlsConfig)
	c.br.Reset(c.raw) // discard anything buffered after the STLS line
	if err := tc.Handshake(); err != nil {
		return true
	}
	c.setConn(tc)
	c.tls = true
	c.userArg = ""
	return false
}

func (c *session) cmdUSER(args []string) {
	if len(args) != 1 {
		c.err("", "USER needs a name")
		return
	}
	c.userArg = args[0]
	c.ok("send PASS")
}

func (c *session) cmdPASS(args []string) {
	user := c.userArg
	c.userArg = ""
	if user == "" {
		c.err("", "send USER first")
		return
	}
	if len(args) != 1 {
		c.err("", "PASS needs a password")
		return
	}
	if pw, ok := c.s.password(user); !ok || pw != args[0] {
		c.authFailed()
		return
	}
	c.login(user)
}

func (c *session) cmdAPOP(args []string) {
	c.userArg = ""
	if len(args) != 2 {
		c.err("", "APOP needs a name and a digest")
		return
	}
	pw, ok := c.s.password(args[0])
	if !ok {
		c.authFailed()
		return
	}
	sum := md5.Sum([]byte(c.timestamp + pw))
	if strings.ToLower(args[1]) != hex.EncodeToString(sum[:]) {
		c.authFailed()
		return
	}
	c.login(args[0])
}

func (c *session) authFailed() { c.err("AUTH", "authentication failed") }

// login takes the maildrop lock, numbers the messages and answers. The
// reply to a failure is -ERR [IN-USE].
func (c *session) login(user string) {
	c.userArg = ""
	if !c.s.lock(user, c.done) {
		c.err("IN-USE", "maildrop is locked by another session")
		return
	}
	c.user = user
	c.msgs = c.s.snapshot(user)
	c.deleted = make([]bool, len(c.msgs))
	c.retrieved = make([]bool, len(c.msgs))
	n, size := c.stat()
	c.ok(fmt.Sprintf("%s has %d messages (%d octets)", user, n, size))
}

func (c *session) stat() (n, size int) {
	for i, m := range c.msgs {
		if !c.deleted[i] {
			n++
			size += len(m.data)
		}
	}
	return n, size
}

// quit commits (in TRANSACTION state), releases the lock and answers.
func (c *session) quit() {
	if c.user == "" {
		c.ok("poptest signing off")
		return
	}
	del := make(map[int64]bool)
	expire0 := c.s.cfg.Expire == "0"
	for i, m := range c.msgs {
		if c.deleted[i] || expire0 && c.retrieved[i] {
			del[m.id] = true
		}
	}
	c.s.unlock(c.user, del)
	c.user = ""
	c.ok(fmt.Sprintf("poptest signing off (%d messages deleted)", len(del)))
}

// msgNum parses a message number argument and returns its index, or writes
// -ERR and returns -1.
func (c *session) msgNum(arg string) int {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || strings.TrimLeft(arg, "0123456789") != "" {
		c.err("", "invalid message number")
		return -1
	}
	if n > len(c.msgs) {
		c.err("", fmt.Sprintf("no such message, only %d messages in maildrop", len(c.msgs)))
		return -1
	}
	if c.deleted[n-1] {
		c.err("", fmt.Sprintf("message %d already deleted", n))
		return -1
	}
	return n - 1
}

// argCounts gives the least and the most arguments of each TRANSACTION
// command.
var argCounts = map[string][2]int{
	"STAT": {0, 0}, "NOOP": {0, 0}, "RSET": {0, 0},
	"LIST": {0, 1}, "UIDL": {0, 1},
	"RETR": {1, 1}, "DELE": {1, 1}, "TOP": {2, 2},
}

func (c *session) transaction(name string, args []string) {
	if n := argCounts[name]; len(args) < n[0] || len(args) > n[1] {
		c.err("", fmt.Sprintf("wrong number of arguments for %s", name))
		return
	}
	switch name {
	case "STAT":
		n, size := c.stat()
		c.ok(fmt.Sprintf("%d %d", n, size))
	case "NOOP":
		c.ok("")
	case "RSET":
		for i := range c.deleted {
			c.deleted[i] = false
		}
		n, size := c.stat()
		c.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", n, size))
	case "LIST", "UIDL":
		value := func(i int) string {
			if name == "LIST" {
				return strconv.Itoa(len(c.msgs[i].data))
			}
			return c.msgs[i].uid
		}
		if len(args) == 1 {
			if i := c.msgNum(args[0]); i >= 0 {
				c.ok(fmt.Sprintf("%d %s", i+1, value(i)))
			}
			return
		}
		var b strings.Builder
		n, size := c.stat()
		if name == "LIST" {
			fmt.Fprintf(&b, "+OK %d messages (%d octets)\r\n", n, size)
		} else {
			b.WriteString("+OK unique-id listing follows\r\n")
		}
		for i := range c.msgs {
			if !c.deleted[i] {
				fmt.Fprintf(&b, "%d %s\r\n", i+1, value(i))
			}
		}
		b.WriteString(".\r\n")
		c.out.WriteString(b.String())
	case "DELE":
		if i := c.msgNum(args[0]); i >= 0 {
			c.deleted[i] = true
			c.ok(fmt.Sprintf("message %d deleted", i+1))
		}
	case "RETR":
		if i := c.msgNum(args[0]); i >= 0 {
			c.retrieved[i] = true
			data := c.msgs[i].data
			c.ok(fmt.Sprintf("%d octets", len(data)))
			writeDotStuffed(&c.out, data)
		}
	case "TOP":
		i := c.msgNum(args[0])
		if i < 0 {
			return
		}
		k, err := strconv.Atoi(args[1])
		if err != nil || k < 0 || strings.TrimLeft(args[1], "0123456789") != "" {
			c.err("", "invalid number of lines")
			return
		}
		c.ok("top of message follows")
		writeDotStuffed(&c.out, top(c.msgs[i].data, k))
	}
}

// top returns the header of msg, the empty line after it, and the first k
// lines of the body. Lines end at LF. A message without an empty line is
// all header.
func top(msg []byte, k int) []byte {
	pos := 0
	for pos < len(msg) {
		end := bytes.IndexByte(msg[pos:], '\n')
		if end < 0 {
			return msg // no empty line: all header
		}
		line := msg[pos : pos+end+1]
		pos += end + 1
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			break // the empty line ends the header
		}
	}
	for ; k > 0 && pos < len(msg); k-- {
		end := bytes.IndexByte(msg[pos:], '\n')
		if end < 0 {
			return msg
		}
		pos += end + 1
	}
	return msg[:pos]
}

// writeDotStuffed writes data as the body of a multi-line reply: a line
// that starts with "." gets another "." in front (RFC 1939 section 3); if
// data is not empty and does not end with CRLF, CRLF is added; then the
// terminating ".\r\n" follows. Lines end at LF; nothing else is changed.
func writeDotStuffed(w io.Writer, data []byte) error {
	rest := data
	for len(rest) > 0 {
		if rest[0] == '.' {
			if _, err := w.Write([]byte{'.'}); err != nil {
				return err
			}
		}
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			end = len(rest) - 1
		}
		if _, err := w.Write(rest[:end+1]); err != nil {
			return err
		}
		rest = rest[end+1:]
	}
	tail := ".\r\n"
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\r\n")) {
		tail = "\r\n.\r\n"
	}
	_, err := io.WriteString(w, tail)
	return err
}
