package mailaccess

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/unimail/unimail/mailaccess/driver"
)

// RunOptions are the settings of Fetcher.Run; a nil *RunOptions means the
// zero value, whose fields take the defaults below.
type RunOptions struct {
	// Interval is how long Run waits between two fetches when the mailbox
	// cannot wait for new mail (POP3); zero means one minute.
	Interval time.Duration
	// WatchRefresh bounds one wait for new mail (IMAP IDLE): after it Run
	// fetches again on a new connection, which also notices a dead one;
	// zero means five minutes.
	WatchRefresh time.Duration
	// MaxBackoff caps the wait between attempts after errors; zero means
	// five minutes.
	MaxBackoff time.Duration
	// AfterFetch, when set, is called after each Fetch with its report
	// and error.
	AfterFetch func(Report, error)
	// Waiting, when set, is called each time Run starts to wait for new
	// mail: with push true once the server has confirmed that it is
	// watching the mailbox (IMAP IDLE entered), so that mail delivered
	// from then on is fetched at once; with push false when a poll sleep
	// of Interval begins. It runs on Run's goroutine and must return
	// quickly.
	Waiting func(mailbox string, push bool)
}

const (
	defaultInterval     = time.Minute
	defaultWatchRefresh = 5 * time.Minute
	defaultMaxBackoff   = 5 * time.Minute
	firstBackoff        = time.Second
)

// withDefaults returns a copy of o with the zero fields filled in.
func (o *RunOptions) withDefaults() RunOptions {
	var r RunOptions
	if o != nil {
		r = *o
	}
	if r.Interval <= 0 {
		r.Interval = defaultInterval
	}
	if r.WatchRefresh <= 0 {
		r.WatchRefresh = defaultWatchRefresh
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = defaultMaxBackoff
	}
	return r
}

// Run keeps a mailbox drained until ctx ends: it fetches (as Fetch does),
// then waits for new mail, and again. dial opens a new session; Run calls
// it for every connection it makes. Where the mailbox can wait for new
// mail (IMAP IDLE), Run waits on a second connection and fetches as soon
// as the server reports a change, each wait bounded by WatchRefresh so
// that a dead connection is noticed; elsewhere (POP3, an IMAP server
// without IDLE) it polls every Interval. After an error it reconnects with jittered exponential backoff
// up to MaxBackoff, and it waits at least as long as the server asks
// (POP3 LOGIN-DELAY).
//
// Run returns ctx's error when ctx ends, or the first error that retrying
// cannot cure: failed authentication, TLS failures, an unsupported
// retention, an invalid argument, or a State that cannot be written.
// Temporary errors (IsTemporary) are retried with backoff; messages the
// handler refused are offered again with the next new mail (or after
// WatchRefresh, or Interval), and a failing Fetcher.Flush with backoff.
func (f *Fetcher) Run(ctx context.Context, dial func(context.Context) (Mailbox, error), h Handler, opts *RunOptions) error {
	o := opts.withDefaults()
	backoff := time.Duration(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := f.cycle(ctx, dial, h, &o)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if permanent(err) {
				return err
			}
			backoff = nextBackoff(backoff, o.MaxBackoff)
			c.wait = max(c.wait, jitter(backoff))
			f.log().Warn("fetch failed; retrying", "in", c.wait.Round(time.Millisecond), "err", err)
		} else {
			backoff = 0
			if c.poll && o.Waiting != nil {
				o.Waiting(c.mailbox, false)
			}
		}
		if c.wait > 0 {
			t := time.NewTimer(c.wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// cycleEnd is how one cycle of Run ended: how long to sleep before the
// next, and whether that sleep is a poll for new mail.
type cycleEnd struct {
	mailbox string
	wait    time.Duration
	poll    bool
}

// cycle fetches once, then waits for new mail if the mailbox can.
func (f *Fetcher) cycle(ctx context.Context, dial func(context.Context) (Mailbox, error), h Handler, o *RunOptions) (cycleEnd, error) {
	mb, err := dial(ctx)
	if err != nil {
		return cycleEnd{}, err
	}
	c := cycleEnd{mailbox: mb.Name()}
	desc := driver.Describe(mb)
	_, watcher := mb.(driver.Watcher)
	rep, err := f.Fetch(ctx, mb, h)
	if o.AfterFetch != nil {
		o.AfterFetch(rep, err)
	}
	if err != nil && (!errors.Is(err, ErrHandler) || isFlushError(err)) {
		c.wait = desc.LoginDelay
		return c, err
	}
	if !watcher {
		c.wait, c.poll = max(o.Interval, desc.LoginDelay), true
		return c, nil
	}
	// Wait for new mail on a fresh session.
	wb, err := dial(ctx)
	if err != nil {
		return c, err
	}
	defer wb.Abort()
	w, ok := wb.(driver.Watcher)
	if !ok {
		c.wait, c.poll = o.Interval, true
		return c, nil
	}
	// Mail that arrived after the Fetch listed, before this session
	// began, would not wake the wait: look first, as a Fetch would.
	// What the handler just refused waits for the next new mail (or the
	// next refresh), rather than being offered again at once.
	refused := make(map[UID]bool, len(rep.Problems))
	for _, p := range rep.Problems {
		refused[p.UID] = true
	}
	if newer, err := f.newMail(ctx, wb, refused); err != nil || newer {
		return c, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.WatchRefresh)
	defer cancel()
	var ready func()
	if o.Waiting != nil {
		ready = func() { o.Waiting(c.mailbox, true) }
	}
	err = w.Wait(wctx, ready)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return c, nil // refresh: fetch again on a new connection
	}
	if errors.Is(err, ErrUnsupported) && ctx.Err() == nil {
		// An IMAP server without IDLE: poll it, as POP3.
		c.wait, c.poll = max(o.Interval, desc.LoginDelay), true
		return c, nil
	}
	return c, err
}

// permanent reports whether retrying err later cannot help.
func permanent(err error) bool {
	if IsTemporary(err) {
		return false
	}
	for _, k := range []error{ErrAuth, ErrTLS, ErrUnsupported, ErrInvalidArgument, ErrState} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func nextBackoff(prev, limit time.Duration) time.Duration {
	if prev <= 0 {
		return firstBackoff
	}
	return min(prev*2, limit)
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}
