package mailaccess

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/unimail/unimail/mailaccess/driver"
)

// Dialer opens a new session with a mailbox; Run calls it for every
// connection it makes.
type Dialer func(ctx context.Context) (Mailbox, error)

const (
	defaultInterval     = time.Minute
	defaultWatchRefresh = 5 * time.Minute
	defaultMaxBackoff   = 5 * time.Minute
	firstBackoff        = time.Second
)

// Run keeps a mailbox drained until ctx ends: it fetches (as Fetch does),
// then waits for new mail, and again. Where the mailbox can wait for new
// mail (a driver.Watcher: IMAP IDLE), Run waits on a second connection and
// fetches as soon as the server reports a change, with each wait bounded
// by WatchRefresh so that a dead connection is noticed; elsewhere (POP3)
// it polls every Interval. After an error it reconnects with jittered
// exponential backoff up to MaxBackoff, and it waits at least as long as
// the server asks (POP3 LOGIN-DELAY through driver.Description.LoginDelay).
//
// Run returns ctx's error when ctx ends, or the first error that retrying
// cannot cure: failed authentication (unless the server marked it
// temporary), TLS failures, an unsupported retention, an invalid argument,
// or a State that cannot be written. Handler refusals and connection
// failures are retried. AfterFetch, when set, sees every Fetch's report.
func (f *Fetcher) Run(ctx context.Context, dial Dialer, h Handler) error {
	backoff := time.Duration(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait, err := f.cycle(ctx, dial, h)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if permanent(err) {
				return err
			}
			backoff = nextBackoff(backoff, f.maxBackoff())
			wait = max(wait, jitter(backoff))
			f.log().Warn("fetch failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		} else {
			backoff = 0
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// cycle fetches once, then waits for new mail if the mailbox can. It
// returns how long to sleep before the next cycle.
func (f *Fetcher) cycle(ctx context.Context, dial Dialer, h Handler) (time.Duration, error) {
	mb, err := dial(ctx)
	if err != nil {
		return 0, err
	}
	desc := driver.Describe(mb)
	_, watcher := mb.(driver.Watcher)
	rep, err := f.Fetch(ctx, mb, h)
	if f.AfterFetch != nil {
		f.AfterFetch(rep, err)
	}
	if err != nil && !errors.Is(err, ErrHandler) {
		return desc.LoginDelay, err
	}
	if !watcher {
		return max(f.interval(), desc.LoginDelay), nil
	}
	// Wait for new mail on a fresh session.
	wb, err := dial(ctx)
	if err != nil {
		return 0, err
	}
	defer wb.Abort()
	w, ok := wb.(driver.Watcher)
	if !ok {
		return f.interval(), nil
	}
	// Mail that arrived after the Fetch listed, before this session
	// began, would not wake the wait: look first.
	if newer, err := f.anythingNew(ctx, wb); err != nil {
		return 0, err
	} else if newer {
		return 0, nil
	}
	wctx, cancel := context.WithTimeout(ctx, f.watchRefresh())
	defer cancel()
	err = w.Wait(wctx, nil)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return 0, nil // refresh: fetch again on a new connection
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// anythingNew reports whether mb lists a message that the State does not
// know (any message at all without a State).
func (f *Fetcher) anythingNew(ctx context.Context, mb Mailbox) (bool, error) {
	var list []MessageInfo
	var err error
	ms, okS := f.State.(MarkState)
	al, okL := mb.(driver.AfterLister)
	if okS && okL {
		mark, merr := ms.Mark(ctx, mb.Name())
		if merr != nil {
			return false, wrapState("read", merr)
		}
		if mark != "" {
			list, err = al.ListAfter(ctx, mark)
		} else {
			list, err = mb.List(ctx)
		}
	} else {
		list, err = mb.List(ctx)
	}
	if err != nil || len(list) == 0 {
		return false, err
	}
	if f.State == nil {
		return true, nil
	}
	recs, err := f.State.Records(ctx, mb.Name())
	if err != nil {
		return false, wrapState("read", err)
	}
	known := make(map[UID]bool, len(recs))
	for _, r := range recs {
		known[r.UID] = true
	}
	for _, m := range list {
		if !known[m.UID] && (f.MaxSize == 0 || m.Size <= f.MaxSize) {
			return true, nil
		}
	}
	return false, nil
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

func (f *Fetcher) interval() time.Duration {
	if f.Interval > 0 {
		return f.Interval
	}
	return defaultInterval
}

func (f *Fetcher) watchRefresh() time.Duration {
	if f.WatchRefresh > 0 {
		return f.WatchRefresh
	}
	return defaultWatchRefresh
}

func (f *Fetcher) maxBackoff() time.Duration {
	if f.MaxBackoff > 0 {
		return f.MaxBackoff
	}
	return defaultMaxBackoff
}
