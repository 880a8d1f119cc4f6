package popwire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// dotStuff encodes a message as the body of a multi-line response (RFC
// 1939 section 3): a "." before every line that starts with ".", a line
// ending at LF, then the terminating line.
func dotStuff(msg []byte) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(msg) {
		if line[0] == '.' {
			out.WriteByte('.')
		}
		out.Write(line)
	}
	out.WriteString(".\r\n")
	return out.Bytes()
}

// pipeWire returns a Wire reading data from a connection that then stays
// open.
func pipeWire(t testing.TB, data []byte) *Wire {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = server.Write(data)
		_, _ = io.Copy(io.Discard, server)
	}()
	t.Cleanup(func() { client.Close(); server.Close(); <-done })
	return New(client, 5*time.Second)
}

// FuzzDotReader checks the round trip of the dot-unstuffing reader against
// a dot-stuffer: every message ending in CRLF comes back byte-exact,
// whatever the sizes of the reads, the terminator and nothing after it is
// consumed, and a limit one octet short of the message fails cleanly.
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{
		"", "a\r\n", ".\r\n", "..\r\n", ".a\r\n", "a\r\n.\r\n.\r\n", "\r\n\r\n", ".\n\r\n", "a\nb\r\n",
		".\r\r\n", "x.\r\n", "\x00\xff\r\n", strings.Repeat("L", 40000) + "\r\n.\r\n",
		"Subject: hi\r\n\r\n.\r\n..\r\n...\r\nend\r\n",
	} {
		f.Add([]byte(s), uint16(1))
		f.Add([]byte(s), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint16) {
		if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
			msg = append(msg, '\r', '\n')
		}
		wire := append(dotStuff(msg), "+OK after\r\n"...)
		w := pipeWire(t, wire)
		r := w.DotReader(int64(len(msg)), "fuzz")
		buf := make([]byte, int(chunk)%(2*bufSize)+1)
		var got []byte
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read after %d octets: %v", len(got), err)
			}
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round trip:\n got %q\nwant %q", got, msg)
		}
		if !r.Done() || r.N() != int64(len(msg)) {
			t.Fatalf("Done %v, N %d, want %d", r.Done(), r.N(), len(msg))
		}
		if st, err := w.ReadStatus(); err != nil || st != "+OK after" {
			t.Fatalf("after the body: %q, %v", st, err)
		}

		if len(msg) > 0 {
			w := pipeWire(t, wire)
			_, err := io.Copy(io.Discard, w.DotReader(int64(len(msg)-1), "fuzz"))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("limit one short: %v", err)
			}
		}
	})
}

// FuzzDotReaderAnyInput feeds arbitrary bytes to the reader: it never
// panics, never returns more than its limit, and either ends at a
// terminator or fails.
func FuzzDotReaderAnyInput(f *testing.F) {
	for _, s := range []string{"", ".", ".\r", ".\n", "a\r\n.\r\n", "..\r\n.\n", "\n.\r\n", strings.Repeat("x", 70000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = server.Write(data)
			server.Close()
		}()
		defer func() { client.Close(); <-done }()
		w := New(client, 5*time.Second)
		const limit = 1000
		n, err := io.Copy(io.Discard, w.DotReader(limit, "fuzz"))
		if n > limit {
			t.Fatalf("read %d octets past the limit", n)
		}
		if err == nil && !bytes.Contains(data, []byte(".\n")) && !bytes.Contains(data, []byte(".\r\n")) {
			t.Fatalf("ended without a terminator in %q", data)
		}
	})
}

// FuzzReadStatus checks the status line reader: a line is accepted if and
// only if it is "+OK" or "-ERR", alone or followed by a space, and comes
// back without its terminator; nothing is read past it.
func FuzzReadStatus(f *testing.F) {
	for _, s := range []string{"+OK", "+OK hi", "-ERR", "-ERR [IN-USE] busy", "", "+ok", "+OKAY", "* OK", "-ERR\r", "+OK\x00", "+OK [SYS/TEMP] x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") || len(line)+2 > MaxStatusLine {
			return
		}
		w := pipeWire(t, []byte(line+"\r\n+OK next\r\n"))
		got, err := w.ReadStatus()
		want := line == "+OK" || strings.HasPrefix(line, "+OK ") || line == "-ERR" || strings.HasPrefix(line, "-ERR ")
		if (err == nil) != want {
			t.Fatalf("%q: accepted %v, want %v (%v)", line, err == nil, want, err)
		}
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || strings.Contains(pe.Msg, "\n") {
				t.Fatalf("%q: %v", line, err)
			}
			return
		}
		if got != line {
			t.Fatalf("%q: got %q", line, got)
		}
		if st, err := w.ReadStatus(); err != nil || st != "+OK next" {
			t.Fatalf("%q: next line %q, %v", line, st, err)
		}
	})
}
