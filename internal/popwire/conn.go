// Package popwire is the transport under package pop: a net.Conn wrapper
// that gives every read and write an idle deadline, can put an absolute
// limit on reads, and turns context cancellation into an immediate error
// (Conn), and the POP3 wire on top of it (Wire): a bounded line reader with
// an overall deadline per control response, STLS without response
// injection, the dot-unstuffing message reader, the reader of listing
// bodies, pipelined writes that run while the answers are read, a wire
// trace that never shows a credential, and the line-gated connection that
// is handed to github.com/knadh/go-pop3 (Gate).
package popwire

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/unimail/unimail/internal/ctxwatch"
	"github.com/unimail/unimail/internal/mailerr"
)

// aLongTimeAgo is a deadline in the past: setting it makes every blocked
// Read and Write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// ErrClosed is returned by every Read and Write after Close.
var ErrClosed = errors.New("connection closed")

// Conn wraps a net.Conn so that no read or write can block forever:
//
//   - before every Read and Write it sets an idle deadline (now + idle), so
//     a transfer that keeps making progress is never cut, while a peer that
//     stops sending or receiving fails after idle;
//   - while a context is bound (Bind), its cancellation sets a deadline in
//     the past, so a blocked Read or Write returns at once with an error
//     that matches the context's cause;
//   - the first I/O error is sticky: every later Read and Write fails fast
//     with it, so a dropped transport is never mistaken for a live one.
//
// Read and Write may run concurrently with each other, with Close and with
// the cancellation of a bound context, but Bind and its unbind function
// must be called by the goroutine that drives the connection.
type Conn struct {
	raw  net.Conn
	idle time.Duration

	mu       sync.Mutex
	gen      uint64          // binding generation, so a stale Unbind does nothing
	ctx      context.Context // bound context, or nil
	done     <-chan struct{} // its Done channel
	canceled bool            // the bound context is done and the deadline is in the past
	// The registration with context.AfterFunc, which outlives a binding
	// (see Bind).
	watch  ctxwatch.Watch
	closed bool      // Close was called: register nothing more
	err    error     // first I/O error, sticky
	hard   time.Time // absolute limit on reads (SetReadLimit), or zero
	armedR time.Time // the read deadline last set on raw
	armedW time.Time // the write deadline last set on raw
}

// NewConn wraps raw. idle is the idle deadline of every Read and Write;
// zero or negative means none (a bound context still applies).
func NewConn(raw net.Conn, idle time.Duration) *Conn {
	c := &Conn{raw: raw, idle: idle}
	c.watch.OnEnd = c.ended
	return c
}

// Binding is a context bound to a Conn by Bind; Unbind ends it. The zero
// Binding is bound to nothing.
type Binding struct {
	c   *Conn
	gen uint64
}

// Bind makes ctx govern every Read and Write until the Binding's Unbind
// is called: when ctx ends, pending and later I/O fails at once with an
// error matching context.Cause(ctx). After Unbind returns, a context that
// ends has no effect. A new Bind replaces the binding in place.
//
// The registration with the context (context.AfterFunc) outlives the
// binding: binding again a context with the same Done channel, as every
// call of a session does, registers nothing and allocates nothing. It
// ends when a context with another Done channel is bound, when the
// context ends, and at Close.
func (c *Conn) Bind(ctx context.Context) Binding {
	done := ctx.Done()
	c.mu.Lock()
	c.gen++
	b := Binding{c: c, gen: c.gen}
	c.ctx, c.done = ctx, done
	c.canceled = false
	var stop func() bool
	if !c.closed {
		stop = c.watch.Watch(ctx)
	}
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	return b
}

// ended runs when a context whose Done channel is done has ended: when
// such a context is bound, I/O is cut short. A hook that runs after its
// context was unbound finds another binding, or none, and does nothing;
// one that ran has set a deadline in the past, which the next I/O
// replaces.
func (c *Conn) ended(done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watch.Ended(done)
	if c.ctx == nil || c.done != done {
		return
	}
	c.canceled = true
	c.armedR, c.armedW = aLongTimeAgo, aLongTimeAgo
	_ = c.raw.SetDeadline(aLongTimeAgo)
}

// Unbind ends the binding. It does nothing on the zero Binding, when
// called again, or when another Bind has replaced the binding.
func (b Binding) Unbind() {
	c := b.c
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.gen == b.gen {
		c.gen++
		c.ctx, c.done = nil, nil
		c.canceled = false
	}
	c.mu.Unlock()
}

// SetReadLimit sets an absolute limit on reads: until it is cleared (with
// the zero time), a Read fails once t has passed, however steadily bytes
// arrive. The idle deadline still applies before it. This bounds a
// response whose every byte must arrive in time, where a trickle of data
// would otherwise extend the idle deadline forever.
func (c *Conn) SetReadLimit(t time.Time) {
	c.mu.Lock()
	c.hard = t
	c.mu.Unlock()
}

// before checks the sticky error and the bound context, then arms the
// deadline for one Read (read) or Write. The idle deadline is re-armed
// only when less than idle is left of it, and then with idle/16 to spare,
// so that a stream of small reads costs few deadline updates: a peer that
// makes no progress fails after between idle and 17/16 idle.
func (c *Conn) before(read bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.canceled || (c.ctx != nil && c.ctx.Err() != nil) {
		c.err = c.cancelErr()
		return c.err
	}
	armed := &c.armedW
	if read {
		armed = &c.armedR
	}
	var d time.Time
	hard := read && !c.hard.IsZero()
	if c.idle > 0 {
		// The progress deadline may lie between now+idle and idle/16
		// later: one already armed in that window is kept.
		lo := time.Now().Add(c.idle)
		hi := lo.Add(c.idle / 16)
		switch {
		case hard && c.hard.Before(hi):
			d = c.hard
		case !armed.Before(lo) && !armed.After(hi):
			return nil
		default:
			d = hi
		}
	} else if hard {
		d = c.hard
	}
	if d.Equal(*armed) {
		return nil
	}
	*armed = d
	// An error here means the connection is closed (the I/O that follows
	// says so) or has no deadlines (nothing better can be done).
	if read {
		_ = c.raw.SetReadDeadline(d)
	} else {
		_ = c.raw.SetWriteDeadline(d)
	}
	return nil
}

// cancelErr builds the error of an I/O cut short by the bound context:
// the context's own error (see mailerr.ContextErr), without the I/O error
// that the deadline in the past caused. c.mu is held.
func (c *Conn) cancelErr() error {
	if err := mailerr.ContextErr(c.ctx); err != nil {
		return err
	}
	return context.Canceled
}

// fail records err as the sticky error if it is the first and returns the
// sticky error. The end of the bound context becomes its error, an
// expired deadline a *mailerr.TimeoutError.
func (c *Conn) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		var ne net.Error
		switch {
		case c.canceled:
			err = c.cancelErr()
		case errors.As(err, &ne) && ne.Timeout() && !c.hard.IsZero() && !time.Now().Before(c.hard):
			err = &mailerr.TimeoutError{After: c.idle, Err: err}
		case errors.As(err, &ne) && ne.Timeout():
			err = &mailerr.TimeoutError{After: c.idle, Stall: true, Err: err}
		}
		c.err = err
	}
	return c.err
}

// Read reads from the connection under the idle deadline and the bound
// context.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.before(true); err != nil {
		return 0, err
	}
	n, err := c.raw.Read(p)
	if err != nil {
		err = c.fail(err)
	}
	return n, err
}

// Write writes to the connection under the idle deadline and the bound
// context.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.before(false); err != nil {
		return 0, err
	}
	n, err := c.raw.Write(p)
	if err != nil {
		err = c.fail(err)
	}
	return n, err
}

// Err returns the first I/O error, or nil while the connection is healthy.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the underlying connection at once; every later Read and
// Write fails with ErrClosed. It is safe to call more than once and from
// any goroutine.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.closed = true
	stop := c.watch.Stop()
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	err := c.raw.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// LocalAddr returns the local address of the underlying connection.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the remote address of the underlying connection.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline does nothing and returns nil: Conn manages the deadlines
// itself (see the type's documentation).
func (c *Conn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing and returns nil, like SetDeadline.
func (c *Conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing and returns nil, like SetDeadline.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*Conn)(nil)
