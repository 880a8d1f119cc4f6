package popwire

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	pop3 "github.com/knadh/go-pop3"
)

// TestConnRebindSameContext binds and unbinds one context many times, as
// the calls of a session do: after the first, that costs no allocation,
// and the context still cuts I/O short while it is bound.
func TestConnRebindSameContext(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c.Bind(ctx).Unbind()
	if n := testing.AllocsPerRun(100, func() { c.Bind(ctx).Unbind() }); n != 0 {
		t.Fatalf("Bind and Unbind of the same context allocate %v times, want 0", n)
	}
	b := c.Bind(ctx)
	defer b.Unbind()
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read under a rebound context that ended: %v", err)
	}
}

// TestConnContextEndedWhileUnbound: a context that ends between two
// bindings does nothing then, and fails the I/O at once when bound again.
func TestConnContextEndedWhileUnbound(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	c.Bind(ctx).Unbind()
	cancel()
	time.Sleep(20 * time.Millisecond)
	go func() { _, _ = server.Write([]byte("x")) }()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("a context that ended unbound cut I/O: %v", err)
	}
	b := c.Bind(ctx)
	defer b.Unbind()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read under a bound context that had ended: %v", err)
	}
}

// TestConnBindReplaces: a Bind of another context replaces the binding;
// the first context's end does nothing, a stale Unbind neither.
func TestConnBindReplaces(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	c := NewConn(client, time.Minute)
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	first := c.Bind(ctx1)
	second := c.Bind(ctx2)
	cancel1()
	first.Unbind() // stale
	time.Sleep(20 * time.Millisecond)
	go func() { _, _ = server.Write([]byte("x")) }()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the end of a replaced binding's context cut I/O: %v", err)
	}
	time.AfterFunc(20*time.Millisecond, cancel2)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read under the second binding: %v", err)
	}
	second.Unbind()
}

// TestConnCloseEndsRegistration: Close ends the registration with the
// context, and a Bind after Close registers nothing.
func TestConnCloseEndsRegistration(t *testing.T) {
	client, _ := net.Pipe()
	c := NewConn(client, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c.Bind(ctx).Unbind()
	c.Close()
	c.Bind(ctx).Unbind()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch.Active() {
		t.Fatal("a registration with the context outlived Close")
	}
}

// TestGateReadStatus reads status lines through the Gate without go-pop3
// while go-pop3 reads others: both see the same stream, in order.
func TestGateReadStatus(t *testing.T) {
	w := serve(t, "+OK 1 octets\r\nx\r\n.\r\n-ERR [IN-USE] busy\r\n+OK fine\r\n+OKAY\r\n", false)
	g := NewGate(w, "+OK\r\n")
	c, err := pop3.New(pop3.Opt{Dialer: gateDialer{g}}).NewConn()
	if err != nil {
		t.Fatal(err)
	}
	g.Expect(MaxListLine, 0)
	if err := g.ReadStatus(); err != nil || !g.StatusOK() || g.StatusErr() || g.Status() != "+OK 1 octets" {
		t.Fatalf("ReadStatus: %v, status %q", err, g.Status())
	}
	body, err := io.ReadAll(w.DotReader(10, "test"))
	if err != nil || string(body) != "x\r\n" {
		t.Fatalf("body %q, %v", body, err)
	}
	g.Expect(MaxListLine, 0)
	if _, err := c.ReadOne(); err == nil || !g.StatusErr() || g.Status() != "-ERR [IN-USE] busy" {
		t.Fatalf("go-pop3 after ReadStatus: %v, status %q", err, g.Status())
	}
	g.Expect(MaxListLine, 0)
	if err := g.ReadStatus(); err != nil || !g.StatusOK() || g.Status() != "+OK fine" {
		t.Fatalf("ReadStatus after go-pop3: %v, status %q", err, g.Status())
	}
	g.Expect(MaxListLine, 0)
	err = g.ReadStatus()
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "+OK or -ERR") || g.StatusOK() || g.Status() != "" {
		t.Fatalf("a line that is no status: %v, status %q", err, g.Status())
	}
	if g.ReadStatus() != w.Err() {
		t.Fatal("ReadStatus on a failed wire does not return its error")
	}
}

// TestDotReaderDescribesLimitLazily: StartDot's description is made only
// when the limit is exceeded, and then says what it was given.
func TestDotReaderDescribesLimitLazily(t *testing.T) {
	w := serve(t, "0123456789\r\n.\r\n", false)
	var r DotReader
	d := &countingText{s: "listed with 3 octets"}
	w.StartDot(&r, 5, d)
	_, err := io.ReadAll(&r)
	if err == nil || !strings.Contains(err.Error(), "message body exceeds 5 octets (listed with 3 octets)") || d.n != 1 {
		t.Fatalf("err %v, description made %d times", err, d.n)
	}
	w = serve(t, "ok\r\n.\r\n", false)
	d = &countingText{s: "unused"}
	w.StartDot(&r, 100, d)
	if b, err := io.ReadAll(&r); err != nil || string(b) != "ok\r\n" || d.n != 0 {
		t.Fatalf("%q, %v, description made %d times", b, err, d.n)
	}
}

type countingText struct {
	s string
	n int
}

func (c *countingText) String() string { c.n++; return c.s }
