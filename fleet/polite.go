package fleet

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// hostLimiter bounds the sessions that this process holds at once per
// server host.
type hostLimiter struct {
	n     int
	mu    sync.Mutex
	slots map[string]chan struct{}
}

func newHostLimiter(n int) *hostLimiter {
	return &hostLimiter{n: n, slots: map[string]chan struct{}{}}
}

// acquire waits for a slot of host, or for ctx to end; release gives it
// back.
func (h *hostLimiter) acquire(ctx context.Context, host string) (release func(), err error) {
	h.mu.Lock()
	c, ok := h.slots[host]
	if !ok {
		c = make(chan struct{}, h.n)
		h.slots[host] = c
	}
	h.mu.Unlock()
	select {
	case c <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-c }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// spread returns d give or take a tenth, so that accounts with the same
// period drift apart instead of running in step.
func spread(d time.Duration) time.Duration {
	if d < 10 {
		return d
	}
	return d - d/10 + rand.N(d/5)
}

// backoff is the wait after the failures-th error in a row: first,
// doubled each time, up to limit, jittered.
func backoff(failures int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return jitter(min(d, limit))
}
