package imap

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Bounds on what the server may send outside message bodies. go-imap
// holds a response line, and the string literals within it (folder names,
// ID values), in memory while it parses them, so a server could otherwise
// make it allocate without end. Message bodies (BODY[...] literals) are
// streamed and not counted.
const (
	// maxResponse is the most octets of one response outside body
	// literals: its lines and its other literals together.
	maxResponse = 4 << 20
	// maxStringLiteral is the largest literal other than a message body.
	maxStringLiteral = 1 << 20
	// maxTraceLine is how much of a line the trace shows.
	maxTraceLine = 4 << 10
)

// errTooLong is the cause of a response over maxResponse.
var errTooLong = errors.New("the server sent a response longer than " + strconv.Itoa(maxResponse>>20) + " MiB outside message bodies")

// protocolViolation is the reason recorded when the server broke a bound
// of the protocol stream: the session ends with ErrProtocol.
type protocolViolation struct{ err error }

func (p *protocolViolation) Error() string { return p.err.Error() }
func (p *protocolViolation) Unwrap() error { return p.err }

// wire is the plaintext connection under go-imap (above TLS, when there
// is TLS). It scans what the server sends for line ends and literals, to
// bound responses (see maxResponse) and to write the trace; it records the
// first read error, which tells a failed connection from a response that
// go-imap could not parse.
type wire struct {
	net.Conn
	m  *Mailbox
	tr *tracer // nil: no trace

	in, out scanner

	mu  sync.Mutex
	err error // the first error of a Read or Write
}

func (m *Mailbox) newWire(c net.Conn) *wire {
	w := &wire{Conn: c, m: m, tr: m.tracer}
	w.in.server = true
	return w
}

// Read reads from the connection and scans what came.
func (w *wire) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		if verr := w.in.scan(p[:n], w.tr); verr != nil {
			v := &protocolViolation{err: verr}
			w.m.conn.Kill(v)
			return 0, v
		}
	}
	w.record(err)
	return n, err
}

// Write writes to the connection; the trace shows what is written.
func (w *wire) Write(p []byte) (int, error) {
	// Traced before it is sent, so that the trace shows the command
	// before the answer.
	if w.tr != nil {
		_ = w.out.scan(p, w.tr)
	}
	n, err := w.Conn.Write(p)
	w.record(err)
	return n, err
}

// record keeps err when it is the first error of a Read or Write.
func (w *wire) record(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// failed returns the first error that a Read or Write returned, or nil.
func (w *wire) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// scanner follows one direction of the protocol stream: lines, and the
// literals ("{n}" or "{n+}" at the end of a line) that continue them.
type scanner struct {
	server bool

	line    []byte // the current line, up to maxTraceLine octets
	lineLen int    // octets of the current line
	resp    int64  // octets of the current response outside body literals
	lit     int64  // octets of the current literal still to come
	litSize int64
	first   bool // the current line starts a response or command
	started bool
}

// scan consumes p. For the server side it returns an error when a bound
// is broken.
func (s *scanner) scan(p []byte, tr *tracer) error {
	if !s.started {
		s.started, s.first = true, true
	}
	for len(p) > 0 {
		if s.lit > 0 {
			k := int64(len(p))
			if k > s.lit {
				k = s.lit
			}
			s.lit -= k
			p = p[k:]
			if s.lit == 0 && tr != nil {
				tr.literal(s.server, s.litSize)
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		p = p[len(chunk):]
		s.lineLen += len(chunk)
		s.resp += int64(len(chunk))
		if room := maxTraceLine - len(s.line); room > 0 {
			s.line = append(s.line, chunk[:min(room, len(chunk))]...)
		}
		if s.server && s.resp > maxResponse {
			return errTooLong
		}
		if i < 0 {
			continue
		}
		// A line is complete.
		line := bytes.TrimRight(s.line, "\r\n")
		size, body, ok := literalAtEnd(line, s.lineLen <= maxTraceLine)
		if tr != nil {
			tr.line(s.server, line, s.first, s.lineLen > maxTraceLine)
		}
		s.line, s.lineLen = s.line[:0], 0
		s.first = false
		if !ok {
			s.resp, s.first = 0, true
			continue
		}
		if s.server && !body {
			if size > maxStringLiteral {
				return errors.New("the server announced a literal of " + strconv.FormatInt(size, 10) + " octets outside a message body")
			}
			s.resp += size
			if s.resp > maxResponse {
				return errTooLong
			}
		}
		s.lit, s.litSize = size, size
		if size == 0 && tr != nil {
			tr.literal(s.server, 0)
		}
	}
	return nil
}

// literalAtEnd parses "{n}", "{n+}" or "~{n}" at the end of line; body
// says whether it follows a BODY[...] or BINARY[...] item (optionally with
// <origin>), that is, a message body that go-imap streams.
func literalAtEnd(line []byte, whole bool) (size int64, body, ok bool) {
	if !whole || len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, false
	}
	num := strings.TrimSuffix(string(line[open+1:len(line)-1]), "+")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	before := strings.TrimSuffix(strings.TrimRight(string(line[:open]), " "), "~")
	if j := strings.LastIndexByte(before, '<'); j >= 0 && strings.HasSuffix(before, ">") {
		before = before[:j]
	}
	up := strings.ToUpper(before)
	k := max(strings.LastIndex(up, "BODY["), strings.LastIndex(up, "BINARY["))
	body = k >= 0 && strings.HasSuffix(up, "]") && !strings.Contains(up[k:], " ")
	return n, body, true
}

// tracer writes the wire trace of Options.Trace with credentials
// redacted.
type tracer struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	// redact is set while the client sends a LOGIN command (its arguments
	// and literals), auth while an AUTHENTICATE exchange runs (until the
	// server's tagged answer to authTag).
	redact  bool
	auth    bool
	authTag string
}

const redacted = "[REDACTED]"

// newTracer returns a tracer writing to w, or nil when w is nil.
func newTracer(w io.Writer, password string) *tracer {
	if w == nil {
		return nil
	}
	t := &tracer{w: w}
	t.addSecret(password)
	return t
}

// addSecret makes s be replaced wherever it would appear.
func (t *tracer) addSecret(s string) {
	if t == nil || s == "" {
		return
	}
	t.mu.Lock()
	t.secrets = append(t.secrets, s)
	t.mu.Unlock()
}

func (t *tracer) emit(server bool, text string) {
	for _, s := range t.secrets {
		text = strings.ReplaceAll(text, s, redacted)
	}
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '.'
		}
		return r
	}, strings.ToValidUTF8(text, "\uFFFD"))
	prefix := "C: "
	if server {
		prefix = "S: "
	}
	_, _ = io.WriteString(t.w, prefix+text+"\n")
}

// line writes one protocol line. first says that it starts a command or
// response (rather than continuing one after a literal).
func (t *tracer) line(server bool, line []byte, first, cut bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	text := string(line)
	if cut {
		text += "…"
	}
	if server {
		tag, _, _ := strings.Cut(text, " ")
		switch {
		case t.auth && first && tag == "+":
			// A SASL challenge.
			text = "+ " + redacted
		case t.auth && first && tag == t.authTag:
			t.auth = false // the exchange is over
		}
		t.emit(true, text)
		return
	}
	switch {
	case t.redact && !first:
		return // the rest of a LOGIN command
	case t.auth:
		// The client's answers in an AUTHENTICATE exchange.
		t.emit(false, redacted)
		return
	}
	t.redact = false
	fields := strings.SplitN(text, " ", 4)
	if len(fields) >= 2 {
		switch strings.ToUpper(fields[1]) {
		case "LOGIN":
			user := ""
			if len(fields) >= 3 && !strings.HasPrefix(fields[2], "{") {
				user = fields[2] + " "
			}
			t.redact = true
			t.emit(false, fields[0]+" LOGIN "+user+redacted)
			return
		case "AUTHENTICATE":
			mech := ""
			if len(fields) >= 3 {
				mech = fields[2] + " "
			}
			t.auth, t.authTag = true, fields[0]
			t.emit(false, fields[0]+" AUTHENTICATE "+mech+redacted)
			return
		}
	}
	t.emit(false, text)
}

// literal writes the size of a literal in place of its contents.
func (t *tracer) literal(server bool, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !server && (t.redact || t.auth) {
		return
	}
	t.emit(server, "["+strconv.FormatInt(size, 10)+" octets]")
}

// isViolation says whether err is a breach of the protocol by the server.
func isViolation(err error) bool {
	var v *protocolViolation
	return errors.As(err, &v)
}

// errWire is the cause when go-imap gave up on a response it could not
// parse, with the connection itself intact.
var errWire = errors.New("the server sent a response that could not be parsed")

// violationError builds the error for a session that the server ended by
// breaking the protocol.
func (m *Mailbox) violationError(op string, reason error) *mailaccess.Error {
	return mailerr.Recast(mailerr.New(op, mailaccess.ErrConnection, "", reason), mailaccess.ErrProtocol, nil)
}
