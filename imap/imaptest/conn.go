package imaptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxLine bounds a client line; imapserver itself refuses commands of more
// than 50 KiB.
const maxLine = 64 << 10

var errLineTooLong = errors.New("imaptest: client line too long")

// conn is the net.Conn that imapserver serves for one client connection.
// It sits between the client's transport and imapserver:
//
//   - It terminates TLS itself, implicit or after STARTTLS (which it
//     answers without imapserver), so that the fault hooks see plaintext
//     on every kind of connection. imapserver therefore never sees a
//     *tls.Conn and runs with InsecureAuth; conn enforces
//     RequireTLSForAuth.
//   - Read splits the client's bytes into command lines, literals
//     ({n} and {n+}) and the lines that answer a "+" continuation (SASL
//     responses, IDLE's DONE). It logs each command line, asks the fault
//     hook, and then passes the line on or answers it itself. It hands
//     imapserver one line or literal chunk at a time, so a command is
//     considered only when imapserver asks for it, after it has answered
//     the previous one.
//   - Write follows the server's output line by line (skipping literals),
//     rewrites the capability lists (STARTTLS, LOGINDISABLED, and the
//     capabilities that Config hides), notes the "+" continuations and
//     tagged answers that the reading side depends on, and enforces
//     DropAfterBytes.
type conn struct {
	srv *Server
	id  int
	raw net.Conn

	// The reading side, used only by imapserver's goroutine in Read.
	rd      io.Reader // the client's bytes: raw, or TLS over raw
	in      []byte    // bytes read from the client, not yet parsed
	pending []byte    // parsed bytes that Read hands to imapserver
	rbuf    []byte
	seq     int

	// mu guards the state that both directions share.
	mu         sync.Mutex
	litLeft    int64  // bytes of the client's current literal still to come
	litPending bool   // a synchronizing literal waits for the server's "+"
	cont       bool   // the next client line continues the current command
	discard    bool   // the current command was answered by a fault: swallow the rest
	secret     bool   // the current command carries credentials (transcript)
	curTag     string // tag of the last command passed on
	dataLines  int    // client lines owed to "+" continuations
	authTag    string // tag of a LOGIN or AUTHENTICATE passed on
	authed     bool
	tls        bool

	// outMu serializes everything written to the client.
	outMu    sync.Mutex
	wr       io.Writer // raw, or TLS over raw
	greeted  bool      // the greeting fault has been applied
	skipLine bool      // drop the next server line (a greeting replaced by Reply)
	outLine  []byte    // a server line being assembled
	outLit   int64     // bytes of a server literal still to pass
	budget   int       // if positive, bytes left before DropAfterBytes cuts
	queued   []byte    // fault answers that wait for the end of a server line
	broken   bool      // the client is gone: output is discarded

	closeOnce sync.Once
	closed    chan struct{}
}

func newConn(s *Server, id int, raw net.Conn, implicitTLS bool) *conn {
	c := &conn{srv: s, id: id, raw: raw, closed: make(chan struct{})}
	if implicitTLS {
		tc := tls.Server(raw, s.tlsConfig)
		c.rd, c.wr, c.tls = tc, tc, true
	} else {
		c.rd, c.wr = raw, raw
	}
	return c
}

// closeRaw closes the client's transport; Read and Write fail from then on.
func (c *conn) closeRaw() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.raw.Close()
	})
}

// Close implements net.Conn for imapserver.
func (c *conn) Close() error {
	c.closeRaw()
	return nil
}

func (c *conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// sleep waits for d or until the connection is closed; it reports whether
// the whole time passed.
func (c *conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closed:
		return false
	}
}

// Read hands imapserver the client's bytes that the fault hook lets
// through.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if err := c.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// fill reads more of the client's bytes.
func (c *conn) fill() error {
	if c.rbuf == nil {
		c.rbuf = make([]byte, 32<<10)
	}
	n, err := c.rd.Read(c.rbuf)
	if n > 0 {
		c.in = append(c.in, c.rbuf[:n]...)
		return nil
	}
	return err
}

// step parses the next piece of client input: a literal chunk or a line.
func (c *conn) step() error {
	c.mu.Lock()
	if c.litLeft > 0 {
		if len(c.in) == 0 {
			c.mu.Unlock()
			return c.fill()
		}
		n := int(min(int64(len(c.in)), c.litLeft))
		c.litLeft -= int64(n)
		c.litPending = false
		if c.litLeft == 0 {
			c.cont = true
		}
		discard := c.discard
		c.mu.Unlock()
		if !discard {
			c.pending = append(c.pending[:0], c.in[:n]...)
		}
		c.in = c.in[n:]
		return nil
	}
	c.mu.Unlock()
	i := bytes.IndexByte(c.in, '\n')
	if i < 0 {
		if len(c.in) > maxLine {
			return errLineTooLong
		}
		return c.fill()
	}
	line := c.in[:i+1]
	c.in = c.in[i+1:]
	return c.clientLine(line)
}

// clientLine handles one complete client line.
func (c *conn) clientLine(line []byte) error {
	c.mu.Lock()
	cont, discard, secret := c.cont, c.discard, c.secret
	data := false
	if !cont && c.dataLines > 0 {
		c.dataLines--
		data = true
	}
	c.mu.Unlock()
	switch {
	case cont:
		return c.continuation(line, discard, secret)
	case data:
		// A SASL response or IDLE's DONE: not a command.
		text := "[redacted]"
		if t := strings.TrimRight(string(line), "\r\n"); strings.EqualFold(t, "DONE") {
			text = t
		}
		c.debug('C', text)
		c.pending = append(c.pending[:0], line...)
		return nil
	}
	return c.command(line)
}

// continuation handles a line that follows a literal of the current
// command.
func (c *conn) continuation(line []byte, discard, secret bool) error {
	n, sync, hasLit := literalSuffix(line)
	c.mu.Lock()
	switch {
	case !hasLit, discard && sync:
		// The command ends here. (A client whose command was answered
		// does not send a synchronizing literal: it waits for a "+" that
		// never comes.)
		c.cont, c.discard, c.secret = false, false, false
	default:
		c.litLeft, c.litPending, c.cont = n, sync, n == 0
	}
	c.mu.Unlock()
	if secret {
		c.debug('C', "[redacted]")
	} else {
		c.debug('C', strings.TrimRight(string(line), "\r\n"))
	}
	if !discard {
		c.pending = append(c.pending[:0], line...)
	}
	return nil
}

// command handles the first line of a command.
func (c *conn) command(line []byte) error {
	text := strings.TrimRight(string(line), "\r\n")
	tag, name, logged := parseCommand(text)
	c.seq++
	cmd := Command{Conn: c.id, Seq: c.seq, Tag: tag, Name: name, Line: logged}
	c.srv.logCommand(cmd)
	c.debug('C', logged)
	f := c.srv.faultFor(cmd)
	if f.Stall > 0 && !c.sleep(f.Stall) {
		return io.EOF
	}

	n, sync, hasLit := literalSuffix(line)
	secret := name == "LOGIN" || name == "AUTHENTICATE"
	var answer string
	switch {
	case f.Drop:
		c.closeRaw()
		return io.EOF
	case f.Reply != "":
		answer = f.Reply
	case f.Bad != "":
		answer = tag + " BAD " + oneLine(f.Bad) + "\r\n"
	case f.No != "":
		answer = tag + " NO " + oneLine(f.No) + "\r\n"
	default:
		answer = c.refusal(tag, name)
	}
	if answer == "" && name == "STARTTLS" && c.canStartTLS() {
		return c.startTLS(tag)
	}

	c.mu.Lock()
	c.secret = secret
	c.litLeft, c.litPending, c.cont, c.discard = 0, false, false, false
	if answer != "" {
		// Swallow what remains of the command: a non-synchronizing
		// literal comes anyway.
		if hasLit && !sync {
			c.litLeft, c.cont, c.discard = n, n == 0, true
		}
	} else {
		c.curTag = tag
		if secret {
			c.authTag = tag
		}
		if hasLit {
			c.litLeft, c.litPending, c.cont = n, sync, n == 0
		}
	}
	c.mu.Unlock()

	if answer != "" {
		return c.inject(answer)
	}
	if f.DropAfterBytes > 0 {
		c.outMu.Lock()
		c.budget = f.DropAfterBytes
		c.outMu.Unlock()
	}
	c.pending = append(c.pending[:0], line...)
	return nil
}

// refusal returns the answer to a command that Config disables, or "".
func (c *conn) refusal(tag, name string) string {
	cfg := &c.srv.cfg
	switch {
	case cfg.NoMove && (name == "MOVE" || name == "UID MOVE"),
		cfg.NoUIDPlus && name == "UID EXPUNGE",
		cfg.NoIdle && name == "IDLE":
		return tag + " BAD Unknown command\r\n"
	case cfg.RequireTLSForAuth && (name == "LOGIN" || name == "AUTHENTICATE"):
		c.mu.Lock()
		plain := !c.tls
		c.mu.Unlock()
		if plain {
			return tag + " NO [PRIVACYREQUIRED] TLS is required to authenticate\r\n"
		}
	}
	return ""
}

// canStartTLS reports whether STARTTLS is offered now.
func (c *conn) canStartTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.srv.cfg.NoStartTLS && !c.tls && !c.authed
}

// startTLS answers STARTTLS and switches the client's transport to TLS.
// imapserver never sees the command. Bytes that the client sent after
// STARTTLS, before the handshake, go to the TLS layer, where they make the
// handshake fail (the plaintext injection of RFC 2595 section 3.1 must not
// be obeyed).
func (c *conn) startTLS(tag string) error {
	if err := c.inject(tag + " OK Begin TLS negotiation now\r\n"); err != nil {
		return err
	}
	var under net.Conn = c.raw
	if len(c.in) > 0 {
		under = &prefixConn{Conn: c.raw, r: io.MultiReader(bytes.NewReader(slices.Clone(c.in)), c.raw)}
		c.in = nil
	}
	tc := tls.Server(under, c.srv.tlsConfig)
	c.rd = tc
	c.outMu.Lock()
	c.wr = tc
	c.outMu.Unlock()
	c.mu.Lock()
	c.tls = true
	c.mu.Unlock()
	return nil
}

// prefixConn reads some bytes before those of its Conn.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// inject writes an answer of our own to the client, at a line boundary of
// the server's output.
func (c *conn) inject(s string) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.debugLines('S', s)
	if len(c.outLine) > 0 || c.outLit > 0 {
		c.queued = append(c.queued, s...)
		return nil
	}
	c.write([]byte(s))
	if c.broken {
		return io.EOF
	}
	return nil
}

// Write passes imapserver's output to the client. It never fails: once
// the client is gone (or cut off by a fault), the output is discarded, and
// imapserver learns of the closed connection when it next reads. (An
// imapserver that sees a write error in the middle of a FETCH response
// leaves a lock held and hangs for ever.)
func (c *conn) Write(p []byte) (int, error) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if !c.greeted {
		c.greeted = true
		c.greetingFault()
	}
	total := len(p)
	for len(p) > 0 {
		if c.outLit > 0 {
			n := int(min(int64(len(p)), c.outLit))
			c.outLit -= int64(n)
			c.send(p[:n])
			p = p[n:]
		} else {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				c.outLine = append(c.outLine, p...)
				break
			}
			c.outLine = append(c.outLine, p[:i+1]...)
			p = p[i+1:]
			c.send(c.serverLine(c.outLine))
			c.outLine = c.outLine[:0]
		}
		if c.outLit == 0 && len(c.queued) > 0 {
			q := c.queued
			c.queued = nil
			c.write(q)
		}
	}
	return total, nil
}

// send writes server output to the client, cutting the connection when
// a DropAfterBytes budget runs out.
func (c *conn) send(b []byte) {
	if len(b) == 0 || c.broken {
		return
	}
	if c.budget > 0 {
		if len(b) >= c.budget {
			c.write(b[:c.budget])
			c.budget = 0
			c.breakOff()
			return
		}
		c.budget -= len(b)
	}
	c.write(b)
}

// write writes to the client; a failure closes the connection. It runs
// with outMu held.
func (c *conn) write(b []byte) {
	if c.broken {
		return
	}
	if _, err := c.wr.Write(b); err != nil {
		c.breakOff()
	}
}

// breakOff closes the connection and discards all further output. It runs
// with outMu held.
func (c *conn) breakOff() {
	c.broken = true
	c.queued = nil
	c.closeRaw()
}

// greetingFault applies the fault hook's answer for the greeting. It runs
// with outMu held, before the greeting is written.
func (c *conn) greetingFault() {
	f := c.srv.faultFor(Command{Conn: c.id})
	if f.Stall > 0 && !c.sleep(f.Stall) {
		c.breakOff()
		return
	}
	switch {
	case f.Drop:
		c.breakOff()
	case f.Reply != "":
		c.skipLine = true
		c.debugLines('S', f.Reply)
		c.write([]byte(f.Reply))
	case f.Bad != "" || f.No != "":
		text := f.No
		if f.Bad != "" {
			text = f.Bad
		}
		bye := "* BYE " + oneLine(text) + "\r\n"
		c.debugLines('S', bye)
		c.write([]byte(bye))
		c.breakOff()
	case f.DropAfterBytes > 0:
		c.budget = f.DropAfterBytes
	}
}

// serverLine inspects and rewrites one complete line of server output
// (with its line end) and returns what to send instead.
func (c *conn) serverLine(line []byte) []byte {
	body := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if n, ok := serverLiteral(body); ok {
		c.outLit = n
	}
	if c.skipLine {
		c.skipLine = false
		return nil
	}
	c.mu.Lock()
	if strings.HasPrefix(body, "+") {
		if c.litPending {
			c.litPending = false // the go-ahead for a literal
		} else {
			c.dataLines++ // the client answers with a line: SASL or DONE
		}
		c.mu.Unlock()
		c.debug('S', body)
		return line
	}
	tag, rest, _ := strings.Cut(body, " ")
	status, after, _ := strings.Cut(rest, " ")
	if tag != "*" {
		if tag == c.authTag {
			c.authed = c.authed || strings.EqualFold(status, "OK")
			c.authTag = ""
		}
		if tag == c.curTag && c.litPending {
			// The command was refused before its literal: the client
			// will not send it.
			c.litLeft, c.litPending, c.cont, c.discard, c.secret = 0, false, false, false, false
		}
		c.dataLines = 0
	}
	tlsOn, authed := c.tls, c.authed
	c.mu.Unlock()

	out := body
	const capCode = "[CAPABILITY "
	switch {
	case tag == "*" && strings.EqualFold(status, "CAPABILITY"):
		out = tag + " " + status + " " + strings.Join(c.filterCaps(strings.Fields(after), tlsOn, authed), " ")
	case strings.HasPrefix(strings.ToUpper(after), capCode):
		if end := strings.IndexByte(after, ']'); end > 0 {
			caps := c.filterCaps(strings.Fields(after[len(capCode):end]), tlsOn, authed)
			out = tag + " " + status + " " + capCode + strings.Join(caps, " ") + after[end:]
		}
	case c.srv.cfg.NoUIDPlus && strings.EqualFold(status, "OK") &&
		(strings.HasPrefix(after, "[APPENDUID ") || strings.HasPrefix(after, "[COPYUID ")):
		if end := strings.IndexByte(after, ']'); end > 0 {
			out = tag + " " + status + " " + strings.TrimPrefix(after[end+1:], " ")
		}
	}
	c.debug('S', out)
	if out == body {
		return line
	}
	return []byte(out + "\r\n")
}

// filterCaps returns the capability list that the client should see.
func (c *conn) filterCaps(caps []string, tlsOn, authed bool) []string {
	cfg := &c.srv.cfg
	loginDisabled := cfg.RequireTLSForAuth && !tlsOn && !authed
	out := make([]string, 0, len(caps)+2)
	for _, name := range caps {
		u := strings.ToUpper(name)
		switch {
		case u == "STARTTLS", u == "LOGINDISABLED":
		case cfg.NoMove && u == "MOVE", cfg.NoUIDPlus && u == "UIDPLUS", cfg.NoIdle && u == "IDLE":
		case loginDisabled && strings.HasPrefix(u, "AUTH="):
		default:
			out = append(out, name)
		}
	}
	if !cfg.NoStartTLS && !tlsOn && !authed {
		out = append(out, "STARTTLS")
	}
	if loginDisabled {
		out = append(out, "LOGINDISABLED")
	}
	return out
}

// parseCommand splits a command line into its tag and upper-cased name,
// and returns the line to log, with credentials redacted.
func parseCommand(text string) (tag, name, logged string) {
	f := strings.SplitN(text, " ", 4)
	tag = f[0]
	if len(f) > 1 {
		name = strings.ToUpper(f[1])
	}
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(strings.SplitN(f[2], " ", 2)[0])
	}
	logged = text
	switch {
	case name == "LOGIN" && len(f) > 2:
		logged = f[0] + " " + f[1] + " [redacted]"
	case name == "AUTHENTICATE" && len(f) > 3:
		logged = f[0] + " " + f[1] + " " + f[2] + " [redacted]"
	}
	return tag, name, logged
}

// literalSuffix reports whether a client line ends with a literal
// announcement, {n} (synchronizing) or {n+} (not), and returns n.
func literalSuffix(line []byte) (n int64, sync, ok bool) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	open := strings.LastIndexByte(s, '{')
	if open < 0 {
		return 0, false, false
	}
	num := s[open+1 : len(s)-1]
	sync = true
	if rest, found := strings.CutSuffix(num, "+"); found {
		num, sync = rest, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, false, false
	}
	return n, sync, true
}

// serverLiteral reports whether a server line ends with a literal
// announcement {n} and returns n.
func serverLiteral(s string) (int64, bool) {
	n, sync, ok := literalSuffix([]byte(s))
	return n, ok && sync
}

// oneLine makes s safe as the text of a status line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// debug writes one line of the transcript to Config.DebugWriter.
func (c *conn) debug(dir byte, text string) {
	w := c.srv.cfg.DebugWriter
	if w == nil {
		return
	}
	c.srv.debugMu.Lock()
	defer c.srv.debugMu.Unlock()
	fmt.Fprintf(w, "%c%d: %s\n", dir, c.id, text)
}

// debugLines writes raw output of our own to the transcript, line by line.
func (c *conn) debugLines(dir byte, s string) {
	if c.srv.cfg.DebugWriter == nil {
		return
	}
	for line := range strings.Lines(s) {
		c.debug(dir, strings.TrimRight(line, "\r\n"))
	}
}
