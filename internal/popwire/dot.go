package popwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DotReader streams the body of a multi-line response (RFC 1939 section
// 3) straight from the Wire: it removes the byte-stuffed leading dot of
// every line that has one and stops at the terminating line ".", which it
// consumes. Every other byte comes through unchanged, line terminators
// included (CRLF stays CRLF, a bare LF stays a bare LF), so a message
// comes back exactly as the server stores it. The terminator is "." CRLF,
// or "." LF from a server that ends its lines with a bare LF.
//
// Only the bytes in the Wire's own buffer and the connection are read,
// never more than one buffer: memory stays flat whatever the size of the
// message.
type DotReader struct {
	w      *Wire
	limit  int64
	n      int64
	bol    bool   // at the beginning of a line
	frag   []byte // rest of the current fragment, inside the Wire's buffer
	done   bool
	err    error
	what   fmt.Stringer
	traced bool
}

// text is a fixed description for DotReader.
type text string

func (t text) String() string { return string(t) }

// DotReader returns a reader of the multi-line body that follows a +OK,
// which must just have been read (so that the Wire's buffer holds the
// body's first byte onwards). More than limit octets of body is a
// *ProtocolError naming what (for example "the announced size ..."). It
// ends the overall deadline of the response whose status line preceded
// the body (see BeginResponse): a body is bounded by the idle deadline
// alone, however long it takes while it keeps moving.
func (w *Wire) DotReader(limit int64, what string) *DotReader {
	r := new(DotReader)
	w.StartDot(r, limit, text(what))
	return r
}

// StartDot is DotReader for a reader that the caller holds (in a
// structure of its own, so that a message costs no allocation here), with
// a description that is made only if the limit is exceeded.
func (w *Wire) StartDot(r *DotReader, limit int64, what fmt.Stringer) {
	w.EndResponse()
	*r = DotReader{w: w, limit: limit, bol: true, what: what}
}

// Read reads the body; it returns io.EOF once the terminating line has
// been consumed.
func (r *DotReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n := 0
	for n < len(p) {
		if len(r.frag) == 0 {
			if r.done {
				break
			}
			if n > 0 && r.w.br.Buffered() == 0 {
				// Return what we have rather than block for more.
				break
			}
			if err := r.next(); err != nil {
				r.err = err
				return n, err
			}
			continue
		}
		c := copy(p[n:], r.frag)
		r.frag = r.frag[c:]
		n += c
	}
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// next reads the next fragment of a line from the Wire's buffer.
func (r *DotReader) next() error {
	w := r.w
	if w.err != nil {
		return w.err
	}
	frag, err := w.br.ReadSlice('\n')
	eol := err == nil
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		r.traceEnd(false)
		return w.Fail(eofErr(err))
	}
	if r.bol && len(frag) > 0 && frag[0] == '.' {
		if eol && (len(frag) == 2 || (len(frag) == 3 && frag[1] == '\r')) {
			r.done = true
			r.frag = nil
			r.traceEnd(true)
			return nil
		}
		frag = frag[1:]
	}
	r.bol = eol
	r.n += int64(len(frag))
	if r.n > r.limit {
		r.traceEnd(false)
		return w.Fail(Protocolf("message body exceeds %d octets (%s)", r.limit, r.what.String()))
	}
	r.frag = frag
	return nil
}

// traceEnd writes the body's summary line to the trace, once.
func (r *DotReader) traceEnd(complete bool) {
	if r.w.tr != nil && !r.traced {
		r.traced = true
		r.w.tr.traceBody(r.n, complete)
	}
}

// Done reports whether the terminating line has been consumed.
func (r *DotReader) Done() bool { return r.done && len(r.frag) == 0 }

// N returns the number of body octets read from the wire so far.
func (r *DotReader) N() int64 { return r.n }

// ReadLines reads the body of a multi-line response that is not a message
// (CAPA, UIDL, LIST), after its +OK, up to and including the terminating
// line, and returns it dot-unstuffed with every line ended by CRLF. A line
// of more than maxLine octets, or more than maxTotal octets in all, is a
// *ProtocolError. Unlike DotReader, it keeps the response's overall
// deadline (see BeginResponse): this is control data. The trace shows each
// line.
func (w *Wire) ReadLines(maxLine int, maxTotal int64) ([]byte, error) {
	var out []byte
	var total int64
	for {
		line, err := w.readLine(maxLine)
		if err != nil {
			return nil, err
		}
		line = TrimEOL(line)
		if len(line) == 1 && line[0] == '.' {
			return out, nil
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		total += int64(len(line)) + 2
		if total > maxTotal {
			return nil, w.Fail(Protocolf("server sent a response longer than %d octets", maxTotal))
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
}
