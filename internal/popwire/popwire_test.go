package popwire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	pop3 "github.com/knadh/go-pop3"
)

// serve returns a Wire over one end of a net.Pipe whose other end sends
// data and then stays open (or closes when closeAfter is set).
func serve(t *testing.T, data string, closeAfter bool) *Wire {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		_, _ = io.WriteString(server, data)
		if closeAfter {
			server.Close()
			return
		}
		_, _ = io.Copy(io.Discard, server)
	}()
	return New(client, 5*time.Second)
}

func TestDotReader(t *testing.T) {
	long := strings.Repeat("L", 3*bufSize+17)
	for _, tc := range []struct {
		name, wire, want string
	}{
		{"plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"empty body", ".\r\n", ""},
		{"stuffed dots", "..\r\n...\r\n..x\r\n.y\r\n.\r\n", ".\r\n..\r\n.x\r\ny\r\n"},
		{"bare LF kept", "a\nb\r\n.c\n.\n", "a\nb\r\nc\n"},
		{"dot not at line start", "a.\r\nb.b\r\n.\r\n", "a.\r\nb.b\r\n"},
		{"dot CR inside line", ".\rx\r\n.\r\n", "\rx\r\n"},
		{"binary", "\x00\xff\r\n\x1b\r\n.\r\n", "\x00\xff\r\n\x1b\r\n"},
		{"line longer than the buffer", "." + long + "\r\n." + long + "\r\n.\r\n", long + "\r\n" + long + "\r\n"},
		{"dot after a long line's buffer boundary", long + "." + "\r\n.\r\n", long + ".\r\n"},
	} {
		for _, size := range []int{1, 7, 4096, 1 << 20} {
			w := serve(t, tc.wire+"+OK after\r\n", false)
			r := w.DotReader(1<<30, "test")
			var got bytes.Buffer
			buf := make([]byte, size)
			for {
				n, err := r.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s/%d: %v", tc.name, size, err)
				}
			}
			if got.String() != tc.want {
				t.Fatalf("%s/%d: got %q, want %q", tc.name, size, trunc(got.String()), trunc(tc.want))
			}
			if !r.Done() {
				t.Fatalf("%s: not done", tc.name)
			}
			// The terminator is consumed and nothing after it.
			st, err := w.ReadStatus()
			if err != nil || st != "+OK after" {
				t.Fatalf("%s: next status %q, %v", tc.name, st, err)
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestDotReaderTruncated(t *testing.T) {
	w := serve(t, "a\r\nb", true)
	_, err := io.ReadAll(w.DotReader(1<<20, "test"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v", err)
	}
	if w.Err() == nil {
		t.Fatal("failure not sticky")
	}
}

func TestDotReaderLimit(t *testing.T) {
	w := serve(t, strings.Repeat("0123456789\r\n", 1000)+".\r\n", false)
	n, err := io.Copy(io.Discard, w.DotReader(5000, "listed with 10 octets"))
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "listed with 10 octets") {
		t.Fatalf("got %v", err)
	}
	if n > 5000 {
		t.Fatalf("read %d octets past the limit", n)
	}
}

func TestReadLineLimit(t *testing.T) {
	w := serve(t, "+OK "+strings.Repeat("x", MaxStatusLine), false)
	_, err := w.ReadStatus()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
}

func TestReadStatus(t *testing.T) {
	for line, ok := range map[string]bool{
		"+OK": true, "+OK fine": true, "-ERR": true, "-ERR [IN-USE] x": true,
		"": false, "+OKAY": false, "+ok": false, "* OK": false, "+ ": false,
	} {
		w := serve(t, line+"\r\n", false)
		_, err := w.ReadStatus()
		if (err == nil) != ok {
			t.Errorf("%q: %v", line, err)
		}
	}
}

// gateDialer makes go-pop3 run on a Gate.
type gateDialer struct{ g *Gate }

func (d gateDialer) Dial(string, string) (net.Conn, error) { return d.g, nil }

func TestGateUnderGoPOP3(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	w := New(client, 5*time.Second)
	g := NewGate(w, "+OK\r\n")
	c, err := pop3.New(pop3.Opt{Dialer: gateDialer{g}}).NewConn()
	if err != nil {
		t.Fatal(err)
	}
	replies := make(chan string, 1)
	go func() {
		buf := make([]byte, 100)
		for r := range replies {
			if _, err := server.Read(buf); err != nil {
				return
			}
			_, _ = io.WriteString(server, r)
		}
	}()
	defer close(replies)

	// A multi-line answer followed at once by more bytes: go-pop3 reads
	// its response and nothing more, the rest stays in the Wire.
	replies <- "+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n+OK next\r\n"
	g.Expect(MaxListLine, 1<<20)
	body, err := c.Cmd("LIST", true)
	if err != nil || body.String() != "1 10\r\n2 20\r\n" {
		t.Fatalf("LIST: %q, %v", body, err)
	}
	if g.Status() != "+OK 2 messages" {
		t.Fatalf("status %q", g.Status())
	}
	deadline := time.Now().Add(time.Second)
	for w.Buffered() == 0 && time.Now().Before(deadline) {
		if _, err := w.br.Peek(1); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := w.ReadStatus(); err != nil || st != "+OK next" {
		t.Fatalf("bytes after the response: %q, %v", st, err)
	}

	// An empty line is not +OK (go-pop3 alone would take it for one).
	replies <- "\r\n"
	g.Expect(MaxListLine, 0)
	if err := c.Noop(); err == nil {
		t.Fatal("empty status line accepted")
	}
	var pe *ProtocolError
	if !errors.As(w.Err(), &pe) {
		t.Fatalf("wire error %v", w.Err())
	}
}

func TestGateBoundsBody(t *testing.T) {
	w := serve(t, "+OK\r\n"+strings.Repeat("1 2\r\n", 1000)+".\r\n", false)
	g := NewGate(w, "+OK\r\n")
	c, err := pop3.New(pop3.Opt{Dialer: gateDialer{g}}).NewConn()
	if err != nil {
		t.Fatal(err)
	}
	g.Expect(MaxListLine, 100)
	if _, err := c.ReadOne(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAll(); err == nil {
		t.Fatal("response beyond the limit accepted")
	}
	var pe *ProtocolError
	if !errors.As(w.Err(), &pe) {
		t.Fatalf("wire error %v", w.Err())
	}
}

func TestConnCancel(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	b := c.Bind(ctx)
	defer b.Unbind()
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("not sticky: %v", err)
	}
}

func TestConnIdleDeadline(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, 50*time.Millisecond)
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v", err)
	}
	if c.Err() == nil {
		t.Fatal("not sticky")
	}
}

func TestConnIdleDeadlineIsPerRead(t *testing.T) {
	// Data trickling in more slowly than the whole transfer's duration but
	// faster than the idle deadline never times out.
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, 200*time.Millisecond)
	go func() {
		for range 6 {
			time.Sleep(50 * time.Millisecond)
			if _, err := server.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1)
	for i := range 6 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}

func TestConnUnbindStopsCancel(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	b := c.Bind(ctx)
	b.Unbind()
	cancel()
	go func() { _, _ = server.Write([]byte("x")) }()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("a context cancelled after unbind interrupted I/O: %v", err)
	}
}

func TestWriteLineRefusesCRLF(t *testing.T) {
	w := serve(t, "", false)
	for _, l := range []string{"USER a\r\nDELE 1", "PASS \n", "X\x00"} {
		if err := w.WriteLine(l); !errors.Is(err, ErrUnsafeLine) {
			t.Errorf("%q: %v", l, err)
		}
	}
	if w.Err() != nil {
		t.Fatal("refusal killed the wire")
	}
}
