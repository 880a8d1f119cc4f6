package popwire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
)

// Limits of the POP3 wire. RFC 2449 section 4 caps a response line at 512
// octets; real servers stay well below MaxStatusLine.
const (
	// MaxStatusLine is the longest status line (+OK/-ERR), greeting or
	// SASL challenge accepted, terminator included.
	MaxStatusLine = 8 << 10
	// MaxListLine is the longest line accepted in the body of a
	// multi-line response other than a message (CAPA, LIST, UIDL).
	MaxListLine = 4 << 10
	// MaxCommandLine is the longest command line sent, CRLF included
	// (RFC 2449 section 4: 255 octets).
	MaxCommandLine = 255

	bufSize = 32 << 10
)

// ProtocolError is a violation of the POP3 protocol by the server: a line
// or response beyond every limit, a status line that is neither +OK nor
// -ERR, bytes injected before a TLS handshake.
type ProtocolError struct {
	// Msg says what was wrong, without the offending bytes.
	Msg string
}

// Error returns Msg.
func (e *ProtocolError) Error() string { return e.Msg }

// Protocolf returns a *ProtocolError.
func Protocolf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// TLSError is a failed TLS handshake (verification, version, not TLS at
// all). A handshake cut by a transport failure is not a TLSError.
type TLSError struct{ Err error }

// Error returns the cause's text (the operation says that it was the
// handshake).
func (e *TLSError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *TLSError) Unwrap() error { return e.Err }

// Wire is one POP3 connection: the deadline Conn, TLS when in use, and a
// buffered reader. Its first failure (I/O or protocol) is sticky: every
// later operation returns it.
//
// A Wire is driven by one goroutine; only Close may be called from another.
type Wire struct {
	conn *Conn
	rw   io.ReadWriter // conn, or a *tls.Conn over conn
	tls  bool
	br   *bufio.Reader
	err  error
	line []byte
	tr   *tracer // nil: no trace
	resp respDeadline
}

// respDeadline is the overall deadline of the control response being
// read (see BeginResponse).
type respDeadline struct {
	active bool
	start  time.Time
	n      int64 // octets read in the response
	steps  int64 // n / responseRateUnit when the limit was last set
}

// responseRateUnit is how many octets of a control response buy one more
// idle period: a listing of many MiB may take longer than one idle period,
// but a server must send at least this much per period.
const responseRateUnit = 64 << 10

// BeginResponse starts the overall deadline of a control response (a
// status line and the lines that may follow it, but not a message body):
// it must be read whole within the idle timeout, plus one more idle
// timeout per 64 KiB received. Unlike the idle deadline, a server cannot
// extend it by trickling bytes. The deadline ends with EndResponse, with
// the next BeginResponse, or when a DotReader starts a message body. A
// Wire without idle timeout has no such deadline either.
func (w *Wire) BeginResponse() {
	if w.conn.idle <= 0 {
		return
	}
	w.resp = respDeadline{active: true, start: time.Now()}
	w.conn.SetReadLimit(w.resp.start.Add(w.conn.idle))
}

// EndResponse ends the deadline started by BeginResponse.
func (w *Wire) EndResponse() {
	if w.resp.active {
		w.resp.active = false
		w.conn.SetReadLimit(time.Time{})
	}
}

// consumed counts n octets of the current control response, extending
// its deadline by one idle period per responseRateUnit.
func (w *Wire) consumed(n int) {
	if !w.resp.active {
		return
	}
	w.resp.n += int64(n)
	if steps := w.resp.n / responseRateUnit; steps != w.resp.steps {
		w.resp.steps = steps
		w.conn.SetReadLimit(w.resp.start.Add(time.Duration(steps+1) * w.conn.idle))
	}
}

// New returns a Wire over raw with the given idle deadline.
func New(raw net.Conn, idle time.Duration) *Wire {
	c := NewConn(raw, idle)
	return &Wire{conn: c, rw: c, br: bufio.NewReaderSize(c, bufSize)}
}

// Bind makes ctx govern the Wire's I/O until the Binding's Unbind (see
// Conn.Bind).
func (w *Wire) Bind(ctx context.Context) Binding { return w.conn.Bind(ctx) }

// Err returns the first failure, or nil while the Wire is healthy.
func (w *Wire) Err() error { return w.err }

// Fail records err as the Wire's failure if it is the first, and returns
// the first failure.
func (w *Wire) Fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Close closes the connection at once, without a TLS close_notify and
// without any POP3 command. It is safe from any goroutine and more than
// once.
func (w *Wire) Close() error { return w.conn.Close() }

// IsTLS reports whether the Wire runs over TLS.
func (w *Wire) IsTLS() bool { return w.tls }

// Conn returns the deadline connection under the Wire.
func (w *Wire) Conn() *Conn { return w.conn }

// StartTLS runs a TLS client handshake with cfg on the connection and
// continues over TLS. It refuses (with a *ProtocolError) when the reader
// already holds bytes that the server sent before the handshake: they
// would be read as if they came over TLS (response injection, CVE-2011-0411
// style). A handshake failure that is not a transport failure is a
// *TLSError.
func (w *Wire) StartTLS(cfg *tls.Config) error {
	if w.err != nil {
		return w.err
	}
	if w.br.Buffered() > 0 {
		return w.Fail(Protocolf("server sent %d octets before the TLS handshake (possible response injection)", w.br.Buffered()))
	}
	if w.tr != nil {
		w.tr.traceNote("TLS handshake")
	}
	tc := tls.Client(w.conn, cfg)
	// The handshake, too, must end within the idle timeout (it is a few
	// KiB), however slowly the server trickles it.
	w.BeginResponse()
	err := tc.Handshake()
	w.EndResponse()
	if err != nil {
		if cerr := w.conn.Err(); cerr != nil {
			return w.Fail(eofErr(cerr))
		}
		return w.Fail(&TLSError{Err: err})
	}
	if w.tr != nil {
		w.tr.traceNote("TLS established: " + tls.VersionName(tc.ConnectionState().Version))
	}
	w.rw = tc
	w.tls = true
	w.br.Reset(tc)
	return nil
}

// TLSState returns the TLS connection state, and false when the Wire does
// not run over TLS.
func (w *Wire) TLSState() (tls.ConnectionState, bool) {
	if tc, ok := w.rw.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Buffered returns the number of bytes received and not yet consumed.
func (w *Wire) Buffered() int { return w.br.Buffered() }

// Write writes p to the connection.
func (w *Wire) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.tr != nil {
		w.tr.traceOut(p)
	}
	n, err := w.rw.Write(p)
	if err != nil {
		return n, w.Fail(err)
	}
	return n, nil
}

// ErrUnsafeLine is returned by WriteLine for a line that holds CR, LF or
// NUL; nothing is sent.
var ErrUnsafeLine = errors.New("command line holds CR, LF or NUL")

// WriteLine sends one command or SASL response line, adding CRLF. A line
// holding CR, LF or NUL is refused with ErrUnsafeLine before anything is
// sent: callers validate their arguments, and this is the last guard.
func (w *Wire) WriteLine(line string) error {
	if strings.ContainsAny(line, "\r\n\x00") {
		return ErrUnsafeLine
	}
	_, err := w.Write([]byte(line + "\r\n"))
	return err
}

// readLine reads one line of at most max octets including its
// terminator, and returns it with the terminator. The result is valid
// until the next read. A line that grows past max fails as soon as the
// bytes are in, without waiting for more.
func (w *Wire) readLine(max int) ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if !w.resp.active {
		// A line on its own is a whole response.
		w.BeginResponse()
		defer w.EndResponse()
	}
	w.line = w.line[:0]
	for {
		if w.br.Buffered() == 0 {
			if _, err := w.br.Peek(1); err != nil && w.br.Buffered() == 0 {
				return nil, w.Fail(eofErr(err))
			}
		}
		buf, _ := w.br.Peek(w.br.Buffered())
		n, done := len(buf), false
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			n, done = i+1, true
		}
		if len(w.line)+n > max {
			return nil, w.Fail(Protocolf("server sent a line longer than %d octets", max))
		}
		w.line = append(w.line, buf[:n]...)
		_, _ = w.br.Discard(n)
		w.consumed(n)
		if done {
			if w.tr != nil {
				w.tr.traceIn(w.line)
			}
			return w.line, nil
		}
	}
}

// eofErr turns the end of the stream in the middle of a response into
// mailerr.ErrServerClosed (which matches io.ErrUnexpectedEOF).
func eofErr(err error) error {
	if errors.Is(err, io.EOF) {
		return mailerr.ErrServerClosed
	}
	return err
}

// ReadLine reads one line of at most max octets and returns it without
// its CRLF (or bare LF). The result is valid until the next read.
func (w *Wire) ReadLine(max int) ([]byte, error) {
	line, err := w.readLine(max)
	if err != nil {
		return nil, err
	}
	return TrimEOL(line), nil
}

// TrimEOL removes a trailing LF and the CR before it.
func TrimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// ValidStatus reports whether line (without its terminator) is a POP3
// status line: "+OK" or "-ERR", alone or followed by a space.
func ValidStatus(line []byte) bool {
	s := string(line)
	return s == "+OK" || strings.HasPrefix(s, "+OK ") || s == "-ERR" || strings.HasPrefix(s, "-ERR ")
}

// ReadStatus reads one status line (at most MaxStatusLine octets) and
// returns it without its terminator. A line that is neither +OK nor -ERR
// is a *ProtocolError and kills the Wire.
func (w *Wire) ReadStatus() (string, error) {
	line, err := w.ReadLine(MaxStatusLine)
	if err != nil {
		return "", err
	}
	if !ValidStatus(line) {
		return "", w.Fail(Protocolf("server sent %s where +OK or -ERR was expected", describe(line)))
	}
	return string(line), nil
}

// ReadMultiline reads the body of a multi-line response (after its +OK)
// up to the terminating ".": it returns the lines, dot-unstuffed and
// without terminators. Each line may be at most MaxListLine octets; more
// than maxLines lines or maxBytes octets in all is a *ProtocolError.
func (w *Wire) ReadMultiline(maxLines, maxBytes int) ([]string, error) {
	if !w.resp.active {
		w.BeginResponse()
		defer w.EndResponse()
	}
	var lines []string
	total := 0
	for {
		line, err := w.ReadLine(MaxListLine)
		if err != nil {
			return nil, err
		}
		if len(line) == 1 && line[0] == '.' {
			return lines, nil
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		total += len(line) + 2
		if len(lines) >= maxLines || total > maxBytes {
			return nil, w.Fail(Protocolf("multi-line response exceeds %d lines or %d octets", maxLines, maxBytes))
		}
		lines = append(lines, string(line))
	}
}

// describe names a bad line for an error without echoing it in full.
func describe(line []byte) string {
	if len(line) == 0 {
		return "an empty line"
	}
	const max = 40
	s := string(line)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// WriteAsync writes p from another goroutine and returns at once, so that
// the caller can read the answers to a long pipelined batch while it is
// still being sent: a batch of any length then costs one round trip, and
// neither side can block the other with full buffers. wait blocks until
// the write has ended and returns its error, which it records as the
// Wire's failure. Until wait has returned, the caller may read from the
// Wire and Close it, but not write. The trace shows p at once.
func (w *Wire) WriteAsync(p []byte) (wait func() error) {
	if w.err != nil {
		err := w.err
		return func() error { return err }
	}
	if w.tr != nil {
		w.tr.traceOut(p)
	}
	done := make(chan error, 1)
	rw := w.rw
	go func() {
		_, err := rw.Write(p)
		done <- err
	}()
	return func() error {
		if err := <-done; err != nil {
			return w.Fail(err)
		}
		return w.err
	}
}
