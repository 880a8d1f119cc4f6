// Package imapconn provides the net.Conn wrapper under the IMAP driver's
// client: it can be killed from any goroutine with a recorded reason (which
// is how context cancellation and timeouts reach a library that has no
// context), and it has a stall watchdog that kills the connection when a
// read or write makes no progress for a given time.
//
// The wrapper sits under TLS, on the raw transport, so that killing it
// unblocks every layer above at once. It ignores the deadlines that the
// layers above set (SetDeadline, SetReadDeadline and SetWriteDeadline
// succeed without effect): go-imap sets fixed ones of its own (30 seconds
// for the rest of a response, 5 minutes for a whole literal) that cannot
// be configured and that would cut a slow but moving transfer, or a
// literal that waits while the caller is busy; the watchdog, Kill and the
// caller's timers are the bounds instead.
package imapconn

import (
	"net"
	"sync"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
)

// Conn wraps a net.Conn. Its methods are safe for concurrent use.
type Conn struct {
	net.Conn

	mu       sync.Mutex
	limit    time.Duration // stall bound; 0 when the watchdog is off
	inflight int           // Read and Write calls in progress
	since    time.Time     // start of the current wait without progress
	timer    *time.Timer
	reason   error // why the connection was killed, or nil
}

// New wraps c.
func New(c net.Conn) *Conn {
	return &Conn{Conn: c}
}

// Read reads from the wrapped connection, under the watchdog.
func (c *Conn) Read(p []byte) (int, error) {
	c.enter()
	n, err := c.Conn.Read(p)
	c.exit(n > 0)
	return n, err
}

// SetDeadline does nothing and returns nil: see the package documentation.
func (c *Conn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing and returns nil.
func (c *Conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing and returns nil.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// Write writes to the wrapped connection, under the watchdog.
func (c *Conn) Write(p []byte) (int, error) {
	c.enter()
	n, err := c.Conn.Write(p)
	c.exit(n > 0)
	return n, err
}

// Watch turns the stall watchdog on: from now on, when a Read or Write is
// in progress and no byte has moved for d, the connection is killed with a
// *mailerr.TimeoutError (Stall set). A call that is already blocked when Watch is called counts
// from now. Watch with d <= 0 is Unwatch.
func (c *Conn) Watch(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		c.stopLocked()
		return
	}
	c.limit = d
	if c.inflight > 0 {
		c.since = time.Now()
		c.armLocked(d)
	}
}

// Unwatch turns the stall watchdog off.
func (c *Conn) Unwatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

// Kill closes the wrapped connection at once and records reason as the
// cause, unless the connection was killed before (the first reason
// stays). Every blocked Read and Write returns an error.
func (c *Conn) Kill(reason error) {
	c.mu.Lock()
	if c.reason == nil {
		c.reason = reason
	}
	c.stopLocked()
	c.mu.Unlock()
	c.Conn.Close()
}

// Close closes the wrapped connection and turns the watchdog off. It
// records no reason: Reason stays nil unless Kill was called.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.stopLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// Reason returns the reason given to the first Kill, or nil when the
// connection was not killed.
func (c *Conn) Reason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func (c *Conn) enter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight++
	if c.inflight == 1 {
		c.since = time.Now()
		if c.limit > 0 {
			c.armLocked(c.limit)
		}
	}
}

func (c *Conn) exit(progress bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if progress {
		c.since = time.Now()
	}
	if c.limit == 0 || c.timer == nil {
		return
	}
	if c.inflight == 0 {
		c.timer.Stop()
	} else if progress {
		c.timer.Reset(c.limit)
	}
}

func (c *Conn) armLocked(d time.Duration) {
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.fire)
		return
	}
	c.timer.Reset(d)
}

func (c *Conn) stopLocked() {
	c.limit = 0
	if c.timer != nil {
		c.timer.Stop()
	}
}

// fire runs when the watchdog timer expires. The timer may be stale (it
// raced with progress or with Unwatch), so the condition is checked again.
func (c *Conn) fire() {
	c.mu.Lock()
	if c.limit == 0 || c.inflight == 0 {
		c.mu.Unlock()
		return
	}
	if left := c.limit - time.Since(c.since); left > 0 {
		c.timer.Reset(left)
		c.mu.Unlock()
		return
	}
	limit := c.limit
	c.mu.Unlock()
	c.Kill(&mailerr.TimeoutError{After: limit, Stall: true})
}
