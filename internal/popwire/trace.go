package popwire

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Redacted is what a trace shows in place of a secret.
const Redacted = "[REDACTED]"

// maxTraceLine is the longest line a trace shows; the rest is summarized.
const maxTraceLine = 1024

// tracer writes the wire trace of one Wire: one line per protocol line,
// "C: " for what the client sent and "S: " for what the server sent. It
// never shows a secret:
//
//   - the argument of PASS, the digest of APOP and the initial response of
//     AUTH are replaced by Redacted whatever the state;
//   - while a SASL exchange runs (SetSASL), every line in both directions
//     other than a status line and the client's "*" is replaced;
//   - every secret registered with AddSecret, and its base64 form, is
//     replaced wherever it appears, in both directions (a server that
//     echoes a password does not put it into the trace);
//   - the body of a message (RETR, TOP) is one line with its octet count.
//
// Control characters are shown escaped, so that a server cannot forge a
// trace line.
type tracer struct {
	mu      sync.Mutex
	out     io.Writer
	secrets []string
	sasl    bool
	in      []byte // a server line being assembled from pieces (Gate)
	inLen   int    // its full length, beyond what in keeps
	outPart []byte // a client line not yet ended by LF
}

// SetTrace makes the Wire write its trace to out (nil: no trace). See the
// rules on redaction in the package's trace documentation: PASS, APOP,
// AUTH and registered secrets are always redacted, message bodies are
// summarized.
func (w *Wire) SetTrace(out io.Writer) {
	if out == nil {
		w.tr = nil
		return
	}
	w.tr = &tracer{out: out}
}

// AddSecret registers values that must never appear in the trace (a
// password, a token, an encoded SASL response). Empty values are ignored.
func (w *Wire) AddSecret(secrets ...string) {
	if w.tr == nil {
		return
	}
	w.tr.mu.Lock()
	defer w.tr.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			w.tr.secrets = append(w.tr.secrets, s)
		}
	}
}

// SetSASL says whether a SASL exchange is running: while it is, the
// trace hides every client line but the AUTH verb and mechanism and a
// cancelling "*", and every server line but +OK and -ERR.
func (w *Wire) SetSASL(on bool) {
	if w.tr == nil {
		return
	}
	w.tr.mu.Lock()
	w.tr.sasl = on
	w.tr.mu.Unlock()
}

// Tracing reports whether the Wire writes a trace.
func (w *Wire) Tracing() bool { return w.tr != nil }

// traceOut traces bytes written by the client, line by line.
func (t *tracer) traceOut(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(t.outPart) < maxTraceLine {
				t.outPart = append(t.outPart, p[:min(len(p), maxTraceLine-len(t.outPart))]...)
			}
			return
		}
		line := p[:i+1]
		if len(t.outPart) > 0 {
			line = append(t.outPart, line...)
			t.outPart = t.outPart[:0]
		}
		p = p[i+1:]
		t.emit("C: ", t.redactClient(string(TrimEOL(line))))
	}
}

// traceIn traces one whole line sent by the server.
func (t *tracer) traceIn(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emitServer(TrimEOL(line), len(TrimEOL(line)))
}

// traceInPart traces a piece of a server line; the line is written when
// its end arrives.
func (t *tracer) traceInPart(b []byte, eol bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := maxTraceLine + 2 - len(t.in); room > 0 {
		t.in = append(t.in, b[:min(len(b), room)]...)
	}
	t.inLen += len(b)
	if !eol {
		return
	}
	full := t.inLen
	line := TrimEOL(t.in)
	if full <= len(t.in) {
		full = len(line)
	}
	t.emitServer(line, full)
	t.in = t.in[:0]
	t.inLen = 0
}

// traceBody traces the end of a message body of n octets.
func (t *tracer) traceBody(n int64, complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := "[message body, " + strconv.FormatInt(n, 10) + " octets]"
	if !complete {
		s = "[message body, " + strconv.FormatInt(n, 10) + " octets, incomplete]"
	}
	t.write("S: " + s + "\n")
}

// traceNote writes a line that is no protocol line, such as the start of
// a TLS handshake.
func (t *tracer) traceNote(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.write("-- " + s + "\n")
}

// emitServer writes a server line of full octets (line may be cut).
// t.mu is held.
func (t *tracer) emitServer(line []byte, full int) {
	s := string(line)
	if t.sasl && !ValidStatus(line) {
		if strings.HasPrefix(s, "+") {
			s = "+ " + Redacted
		} else {
			s = Redacted
		}
	}
	if len(s) > maxTraceLine {
		s = s[:maxTraceLine]
	}
	if full > maxTraceLine {
		s += "... (" + strconv.Itoa(full) + " octets)"
	}
	t.emit("S: ", s)
}

// redactClient applies the structural redaction to a client line. t.mu
// is held.
func (t *tracer) redactClient(line string) string {
	verb, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "PASS":
		return verb + " " + Redacted
	case "APOP":
		user, _, _ := strings.Cut(rest, " ")
		return verb + " " + user + " " + Redacted
	case "AUTH":
		if mech, ir, ok := strings.Cut(rest, " "); ok && ir != "" {
			return verb + " " + mech + " " + Redacted
		}
		return line
	}
	if t.sasl && line != "*" {
		return Redacted
	}
	return line
}

// emit writes one trace line: the registered secrets removed, control
// characters escaped, the length bounded. t.mu is held.
func (t *tracer) emit(prefix, s string) {
	for _, sec := range t.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	if len(s) > maxTraceLine+64 {
		s = s[:maxTraceLine] + "... (cut)"
	}
	t.write(prefix + escape(s) + "\n")
}

// write sends one line to the trace writer; its errors are ignored, a
// trace never breaks a session. t.mu is held.
func (t *tracer) write(s string) { _, _ = io.WriteString(t.out, s) }

// escape shows control characters and invalid UTF-8 as Go escapes.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			const hex = "0123456789abcdef"
			b.WriteString(`\x` + string(hex[s[i]>>4]) + string(hex[s[i]&15]))
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
