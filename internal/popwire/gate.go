package popwire

import (
	"bytes"
	"net"
	"time"
)

// Gate is the net.Conn that github.com/knadh/go-pop3 runs on. It fixes,
// from below, what go-pop3 cannot do itself:
//
//   - It first replays a synthetic greeting, so that go-pop3's NewConn
//     starts on a connection that is already authenticated.
//   - Every Read returns at most one line (it stops after the first LF), so
//     go-pop3's bufio.Reader never reads ahead: between two responses it
//     holds no byte, and the Wire can stream a message body itself.
//   - After Expect, the next line must be a status line (+OK or -ERR, at
//     most MaxStatusLine octets; go-pop3 takes an empty line for +OK), and
//     it is kept for Status so that the caller can parse -ERR response
//     codes. The lines after it are bounded per line and in total (go-pop3
//     buffers them without limit).
//   - Writes can be corked, so that a pipelined batch of commands leaves
//     in one write.
//
// Any violation fails the Wire with a *ProtocolError, which Read returns.
type Gate struct {
	w       *Wire
	pending []byte // bytes handed out before the wire's: greeting, status line
	pbuf    []byte // the storage of pending for a status line, reused
	// The last status line read after Expect, without its terminator
	// (statusB, reused), and as a string once Status made it.
	statusB []byte
	status  string

	expect   bool // the next line is a status line
	maxLine  int
	maxTotal int64
	lineLen  int
	total    int64

	cork bool
	wbuf []byte
}

// NewGate returns the Gate of w. greeting (with its CRLF) is what the first
// Reads return.
func NewGate(w *Wire, greeting string) *Gate {
	return &Gate{w: w, pending: []byte(greeting), maxLine: MaxStatusLine, maxTotal: MaxStatusLine}
}

// Expect says that the next line read is a status line, and that the body
// that may follow it has lines of at most maxLine octets and at most
// maxTotal octets in all. It starts the response's overall deadline (see
// Wire.BeginResponse).
func (g *Gate) Expect(maxLine int, maxTotal int64) {
	g.w.BeginResponse()
	g.expect = true
	g.statusB, g.status = g.statusB[:0], ""
	g.maxLine, g.maxTotal = maxLine, maxTotal
	g.lineLen, g.total = 0, 0
}

// Status returns the last status line read after Expect, without its
// terminator, or "" when none was read.
func (g *Gate) Status() string {
	if g.status == "" && len(g.statusB) > 0 {
		g.status = string(g.statusB)
	}
	return g.status
}

// StatusOK reports whether the last status line read after Expect is
// +OK, StatusErr whether it is -ERR: unlike Status, they make no string.
func (g *Gate) StatusOK() bool { return bytes.HasPrefix(g.statusB, []byte("+OK")) }

// StatusErr: see StatusOK.
func (g *Gate) StatusErr() bool { return bytes.HasPrefix(g.statusB, []byte("-ERR")) }

// ReadStatus reads the status line that Expect announced, as Read would,
// without handing it to go-pop3 (whose reader then holds nothing, as
// between any two responses): for a caller that needs nothing but
// Status. An error has failed the Wire.
func (g *Gate) ReadStatus() error {
	if g.w.err != nil {
		return g.w.err
	}
	_, err := g.readStatus()
	return err
}

// readStatus reads the status line that Expect announced and keeps it
// for Status; it returns the line with its terminator, valid until the
// next read.
func (g *Gate) readStatus() ([]byte, error) {
	w := g.w
	line, err := w.readLine(MaxStatusLine)
	if err != nil {
		return nil, err
	}
	s := TrimEOL(line)
	if !ValidStatus(s) {
		return nil, w.Fail(Protocolf("server sent %s where +OK or -ERR was expected", describe(s)))
	}
	g.expect = false
	g.statusB, g.status = append(g.statusB[:0], s...), ""
	return line, nil
}

// Read returns at most one line, checked as described on Gate.
func (g *Gate) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	w := g.w
	if w.err != nil {
		return 0, w.err
	}
	if g.expect {
		line, err := g.readStatus()
		if err != nil {
			return 0, err
		}
		g.pbuf = append(g.pbuf[:0], line...)
		g.pending = g.pbuf
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if w.br.Buffered() == 0 {
		if _, err := w.br.Peek(1); err != nil {
			if w.br.Buffered() == 0 {
				return 0, w.Fail(eofErr(err))
			}
		}
	}
	buf, _ := w.br.Peek(w.br.Buffered())
	eol := false
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
		eol = true
	}
	if len(buf) > len(p) {
		buf = buf[:len(p)]
		eol = false
	}
	if g.lineLen+len(buf) > g.maxLine {
		return 0, w.Fail(Protocolf("server sent a line longer than %d octets", g.maxLine))
	}
	if g.total+int64(len(buf)) > g.maxTotal {
		return 0, w.Fail(Protocolf("server sent a response longer than %d octets", g.maxTotal))
	}
	n := copy(p, buf)
	_, _ = w.br.Discard(n)
	w.consumed(n)
	if w.tr != nil {
		w.tr.traceInPart(buf[:n], eol)
	}
	g.total += int64(n)
	if eol {
		g.lineLen = 0
	} else {
		g.lineLen += n
	}
	return n, nil
}

// Write sends p, or keeps it until Uncork while corked.
func (g *Gate) Write(p []byte) (int, error) {
	if g.cork {
		g.wbuf = append(g.wbuf, p...)
		return len(p), nil
	}
	return g.w.Write(p)
}

// Cork makes Writes accumulate until Uncork.
func (g *Gate) Cork() { g.cork = true }

// Uncork sends what accumulated since Cork in one write.
func (g *Gate) Uncork() error {
	g.cork = false
	buf := g.wbuf
	g.wbuf = g.wbuf[:0]
	if len(buf) == 0 {
		return nil
	}
	_, err := g.w.Write(buf)
	return err
}

// Close closes the Wire's connection at once.
func (g *Gate) Close() error { return g.w.Close() }

// LocalAddr returns the local address of the connection.
func (g *Gate) LocalAddr() net.Addr { return g.w.conn.LocalAddr() }

// RemoteAddr returns the remote address of the connection.
func (g *Gate) RemoteAddr() net.Addr { return g.w.conn.RemoteAddr() }

// SetDeadline does nothing and returns nil: the Wire's Conn manages the
// deadlines.
func (g *Gate) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing and returns nil, like SetDeadline.
func (g *Gate) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing and returns nil, like SetDeadline.
func (g *Gate) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*Gate)(nil)
