package imapconn

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
)

func pipe(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return New(a), b
}

func TestWatchKillsStalledRead(t *testing.T) {
	c, _ := pipe(t)
	c.Watch(50 * time.Millisecond)
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("Read on a stalled connection succeeded")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("stalled Read ended after %v, want about 50ms", d)
	}
	var stall *mailerr.TimeoutError
	if !errors.As(c.Reason(), &stall) || stall.After != 50*time.Millisecond || !stall.Stall {
		t.Fatalf("Reason = %v, want a stall TimeoutError of 50ms", c.Reason())
	}
}

func TestWatchCountsAReadAlreadyBlocked(t *testing.T) {
	c, _ := pipe(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	// Not watched: the read may block as long as it likes.
	select {
	case err := <-done:
		t.Fatalf("unwatched Read returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Watch(50 * time.Millisecond)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end a Read that was already blocked")
	}
}

func TestProgressKeepsConnectionAlive(t *testing.T) {
	c, peer := pipe(t)
	c.Watch(100 * time.Millisecond)
	go func() {
		for i := 0; i < 10; i++ {
			time.Sleep(30 * time.Millisecond)
			if _, err := peer.Write([]byte("x")); err != nil {
				return
			}
		}
		peer.Close()
	}()
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 10 {
		t.Fatalf("Copy = %d, %v; want 10 bytes without a stall (Reason %v)", n, err, c.Reason())
	}
	if c.Reason() != nil {
		t.Fatalf("Reason = %v", c.Reason())
	}
}

func TestNoWatchWithoutIO(t *testing.T) {
	c, peer := pipe(t)
	c.Watch(30 * time.Millisecond)
	time.Sleep(100 * time.Millisecond) // nothing in flight: nothing to bound
	go peer.Write([]byte("y"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read after an idle pause: %v", err)
	}
	c.Unwatch()
	if c.Reason() != nil {
		t.Fatalf("Reason = %v", c.Reason())
	}
}

func TestKillKeepsFirstReason(t *testing.T) {
	c, _ := pipe(t)
	first := errors.New("first")
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	c.Kill(first)
	c.Kill(errors.New("second"))
	if err := <-done; err == nil {
		t.Fatal("Read survived Kill")
	}
	if c.Reason() != first {
		t.Fatalf("Reason = %v, want the first", c.Reason())
	}
	if err := c.Close(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Logf("Close after Kill: %v", err)
	}
}

func TestCloseRecordsNoReason(t *testing.T) {
	c, _ := pipe(t)
	c.Close()
	if c.Reason() != nil {
		t.Fatalf("Reason after Close = %v, want nil", c.Reason())
	}
}

func TestDeadlinesFromAboveAreIgnored(t *testing.T) {
	c, peer := pipe(t)
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	go peer.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		t.Fatalf("Read after a past deadline was set: %v, want the deadline ignored", err)
	}
	go io.ReadFull(peer, make([]byte, 1))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("Write after a past deadline was set: %v", err)
	}
}
