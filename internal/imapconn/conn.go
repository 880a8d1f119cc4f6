// Package imapconn provides the net.Conn wrapper under the IMAP driver's
// client: it can be killed from any goroutine with a recorded reason (which
// is how context cancellation and timeouts reach a library that has no
// context), it has a stall watchdog that kills the connection when a read
// or write makes no progress for a given time, a binding of the caller's
// context (Bind) and alarms that bound a wait in total (Alarm). The
// binding and the alarms are made to be started and ended for every
// message of a session without allocating: one registration with the
// context and one timer serve them all.
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
	"context"
	"net"
	"sync"
	"time"

	"github.com/unimail/unimail/internal/ctxwatch"
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

	// The context bound by Bind, or nil, with its Done channel and the
	// generation of the binding (so that a stale Unbind does nothing).
	bound     context.Context
	boundDone <-chan struct{}
	gen       uint64
	// The registration with context.AfterFunc, which outlives a binding.
	watch ctxwatch.Watch
	down  bool // Kill or Close was called: register nothing more
}

// New wraps c.
func New(c net.Conn) *Conn {
	conn := &Conn{Conn: c}
	conn.watch.OnEnd = conn.ended
	return conn
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
	stop := c.downLocked()
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	c.Conn.Close()
}

// Close closes the wrapped connection and turns the watchdog off. It
// records no reason: Reason stays nil unless Kill was called.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.stopLocked()
	stop := c.downLocked()
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	return c.Conn.Close()
}

// downLocked marks the connection as ended and returns the function that
// ends the registration with a context, if there is one, to be called
// without c.mu held.
func (c *Conn) downLocked() func() bool {
	c.down = true
	return c.watch.Stop()
}

// Binding is a context bound to the connection by Bind. The zero Binding
// is bound to nothing.
type Binding struct {
	c   *Conn
	gen uint64
}

// Bind makes the end of ctx kill the connection, with
// mailerr.ContextErr(ctx) as the reason, until the Binding's Unbind is
// called. One context is bound at a time: while another binding is in
// place, ok is false and nothing is bound. A ctx that has already ended
// kills the connection at once (from another goroutine, as
// context.AfterFunc does).
//
// The registration with the context (context.AfterFunc) outlives the
// binding: binding again a context with the same Done channel, as every
// call of a session does, registers nothing and allocates nothing. When
// the context ends while nothing is bound to it, nothing happens (and the
// registration is gone: the next Bind registers anew). The registration
// ends when a context with another Done channel is bound, and at Kill
// and Close.
func (c *Conn) Bind(ctx context.Context) (b Binding, ok bool) {
	done := ctx.Done()
	c.mu.Lock()
	if c.bound != nil {
		c.mu.Unlock()
		return Binding{}, false
	}
	c.gen++
	c.bound, c.boundDone = ctx, done
	b = Binding{c: c, gen: c.gen}
	var stop func() bool
	if !c.down {
		stop = c.watch.Watch(ctx)
	}
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	return b, true
}

// ended runs when a context whose Done channel is done has ended: it
// kills the connection if such a context is bound.
func (c *Conn) ended(done <-chan struct{}) {
	c.mu.Lock()
	c.watch.Ended(done)
	ctx := c.bound
	hit := ctx != nil && c.boundDone == done
	c.mu.Unlock()
	if hit {
		c.Kill(mailerr.ContextErr(ctx))
	}
}

// Unbind ends the binding: the end of its context no longer kills the
// connection. It does nothing on the zero Binding, or when called again.
func (b Binding) Unbind() {
	c := b.c
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.gen == b.gen {
		c.bound, c.boundDone = nil, nil
	}
	c.mu.Unlock()
}

// Alarm bounds a wait in total: once armed, it kills the connection with a
// *mailerr.TimeoutError (Stall false) unless it is disarmed within the
// duration given to Arm, however steadily bytes move. One timer serves
// every arming, so that a bound per message costs no allocation.
type Alarm struct {
	c     *Conn
	mu    sync.Mutex
	t     *time.Timer
	depth int           // Arm calls not yet disarmed
	d     time.Duration // the bound of the outermost arming
	since time.Time     // when it was armed
}

// NewAlarm returns a disarmed Alarm for c.
func (c *Conn) NewAlarm() *Alarm { return &Alarm{c: c} }

// Arm starts the bound of d. Arm calls nest: an Arm while armed keeps the
// bound already running (which, for the same d, ends first), and the
// alarm is disarmed by the Disarm that matches the first Arm.
func (a *Alarm) Arm(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.depth++
	if a.depth > 1 {
		return
	}
	a.d, a.since = d, time.Now()
	if a.t == nil {
		a.t = time.AfterFunc(d, a.fire)
	} else {
		a.t.Reset(d)
	}
}

// Disarm ends the bound started by the matching Arm. It does nothing on
// an alarm that is not armed.
func (a *Alarm) Disarm() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.depth == 0 {
		return
	}
	a.depth--
	if a.depth == 0 {
		a.t.Stop()
	}
}

// fire runs when the timer expires. It may be the late run of an earlier
// arming (Reset re-armed the timer while it ran), so the bound is checked
// again: the timer is already set for the current one.
func (a *Alarm) fire() {
	a.mu.Lock()
	if a.depth == 0 || time.Since(a.since) < a.d {
		a.mu.Unlock()
		return
	}
	d := a.d
	a.mu.Unlock()
	a.c.Kill(&mailerr.TimeoutError{After: d})
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
