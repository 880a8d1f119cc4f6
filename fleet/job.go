package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/riverqueue/river"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// ErrFenced is matched by the error of a run whose account was taken
// over by another worker while it ran (its job was rescued after
// RescueAfter, or the account was removed): the run recorded nothing more
// and deleted nothing, and its session was aborted.
var ErrFenced = errors.New("fleet: another worker took over the account")

// errCredentials is matched by the error of Options.Credentials.
var errCredentials = errors.New("fleet: no credentials")

// Causes of the end of a job's context.
var (
	errHandover = errors.New("fleet: push period over, or the worker is stopping")
	errTimeout  = errors.New("fleet: the session took longer than JobTimeout")
)

// worker runs the accounts' jobs.
type worker struct {
	river.WorkerDefaults[accountArgs]
	f *Fleet
}

type ctxKey struct{}

// AccountID returns the ID of the account whose message a handler
// takes, from the handler's context.
func AccountID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(ctxKey{}).(string)
	return id, ok
}

// Work runs one account once: a poll (one session), or a push period
// (sessions that wait for new mail), then schedules the account's next
// run by snoozing the job.
func (w *worker) Work(ctx context.Context, job *river.Job[accountArgs]) error {
	f := w.f
	id := job.Args.Account
	start := time.Now()
	lag := max(start.Sub(job.ScheduledAt), 0)
	f.stats.update(func(s *Stats) { s.Running++; s.Lag = lag; s.MaxLag = max(s.MaxLag, lag) })
	defer f.stats.update(func(s *Stats) { s.Running-- })
	a, err := f.load(ctx, id)
	if errors.Is(err, errNoAccount) {
		return river.JobCancel(err)
	}
	if err != nil {
		return river.JobSnooze(jitter(f.opts.Backoff))
	}
	if a.stopped {
		return river.JobCancel(errors.New("the account is stopped"))
	}
	var token, requests int64
	if err := f.db.QueryRowContext(ctx, f.q.bump, id, start.UnixNano()).Scan(&token, &requests); err != nil {
		return river.JobSnooze(jitter(f.opts.Backoff))
	}
	r := &run{f: f, a: a, token: token}
	out := r.do(ctx)
	next, stop := r.next(out)
	recorded := r.record(out, next, stop)
	f.stats.update(func(s *Stats) {
		s.Runs++
		if out.err != nil {
			s.Errors[kindOf(out.err)]++
		}
		if errors.Is(out.err, ErrFenced) || !recorded {
			s.Fenced++
		}
	})
	if out.err != nil && !out.handover {
		f.opts.Logger.Warn("fleet: account run failed", "account", id, "kind", kindOf(out.err), "err", r.clean(out.err.Error()), "next", time.Until(next).Round(time.Millisecond), "stopped", stop)
	}
	if stop && recorded {
		// Unless Add started the account again meanwhile (its job
		// insert then met this one, still running), the job ends here.
		if l, err := f.load(context.WithoutCancel(ctx), id); err != nil || l.stopped {
			return river.JobCancel(fmt.Errorf("the account is stopped: %s", kindOf(out.err)))
		}
		return river.JobSnooze(0)
	}
	if r.requested(requests) {
		return river.JobSnooze(0) // RunNow was called during the run
	}
	return river.JobSnooze(max(time.Until(next), 0))
}

// requested records that the run has looked at the account's RunNow
// requests, and reports whether one came after it started (after its
// token was raised), if the run still holds its fence.
func (r *run) requested(before int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var requests int64
	if err := r.f.db.QueryRowContext(ctx, r.f.q.seen, r.a.ID, r.token).Scan(&requests); err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			r.f.opts.Logger.Warn("fleet: reading an account's run requests failed", "account", r.a.ID, "err", r.f.fail("run now", err))
		}
		return false
	}
	return requests > before
}

// run is one job of one account.
type run struct {
	f              *Fleet
	a              loaded
	token          int64
	auth           mailaccess.Auth
	fetched, bytes int64
	lastOK         time.Time
	loginDelay     time.Duration // the server's POP3 LOGIN-DELAY
}

// outcome is how a run ended.
type outcome struct {
	err error
	// handover: the run was cut short on purpose (end of a push
	// period, the worker stopping); it is due again at once.
	handover bool
}

func (r *run) do(ctx context.Context) outcome {
	f := r.f
	ctx, cancel := context.WithCancelCause(context.WithValue(ctx, ctxKey{}, r.a.ID))
	defer cancel(nil)
	stop := context.AfterFunc(f.stopCtx, func() { cancel(errHandover) })
	defer stop()
	h := f.opts.Handlers[r.a.Handler]
	if h == nil {
		return outcome{err: &mailaccess.Error{Op: "fleet", Kind: mailaccess.ErrInvalidArgument, Err: fmt.Errorf("no handler named %q in this process", r.a.Handler)}}
	}
	t, err := unimail.ParseURL(r.a.URL)
	if err != nil {
		return outcome{err: err}
	}
	auth, err := f.opts.Credentials(ctx, r.a.Account)
	if err != nil {
		if ctx.Err() != nil {
			return r.ended(ctx, err)
		}
		kind := mailaccess.ErrUnavailable
		if errors.Is(err, mailaccess.ErrAuth) {
			kind = mailaccess.ErrAuth
		}
		return outcome{err: &mailaccess.Error{Op: "fleet credentials", Kind: kind, Err: fmt.Errorf("%w: %w", errCredentials, err)}}
	}
	r.auth = auth
	opts := &unimail.Options{}
	if f.opts.Dial != nil {
		*opts = *f.opts.Dial
	}
	opts.Auth = auth
	fe := &mailaccess.Fetcher{
		Retention: r.a.Retention,
		State:     f.state.Fenced(r.txFence),
		Batch:     f.opts.Batch,
		MaxSize:   f.opts.MaxSize,
		Logger:    f.opts.Logger.With("account", r.a.ID),
		Fence: func(ctx context.Context) error {
			err := r.fence(ctx)
			if errors.Is(err, ErrFenced) {
				cancel(err)
			}
			return err
		},
	}
	if r.a.Push {
		return r.push(ctx, fe, t, opts, h)
	}
	ctx, cancelT := context.WithTimeoutCause(ctx, f.opts.JobTimeout, errTimeout)
	defer cancelT()
	release, err := f.hosts.acquire(ctx, t.Host)
	if err != nil {
		return r.ended(ctx, err)
	}
	defer release()
	mb, err := unimail.DialTarget(ctx, t, opts)
	if err != nil {
		return r.ended(ctx, err)
	}
	r.loginDelay = driver.Describe(mb).LoginDelay
	rep, err := fe.Fetch(ctx, mb, h)
	r.count(rep, err)
	return r.ended(ctx, err)
}

// push holds the account's connection for one PushPeriod with Run, which
// waits for new mail where the server can push and polls every Every
// elsewhere, then hands over.
func (r *run) push(ctx context.Context, fe *mailaccess.Fetcher, t *unimail.Target, opts *unimail.Options, h mailaccess.Handler) outcome {
	f := r.f
	ctx, cancel := context.WithTimeoutCause(ctx, f.opts.PushPeriod, errHandover)
	defer cancel()
	var last error
	dial := func(ctx context.Context) (mailaccess.Mailbox, error) {
		release, err := f.hosts.acquire(ctx, t.Host)
		if err != nil {
			return nil, err
		}
		defer release()
		return unimail.DialTarget(ctx, t, opts)
	}
	err := fe.Run(ctx, dial, h, &mailaccess.RunOptions{
		Interval:     r.a.Every,
		WatchRefresh: min(f.opts.PushPeriod, 5*time.Minute),
		MaxBackoff:   f.opts.MaxBackoff,
		AfterFetch: func(rep mailaccess.Report, err error) {
			r.count(rep, err)
			if ctx.Err() == nil { // not the end of the period cutting it short
				last = err
			}
		},
	})
	o := r.ended(ctx, err)
	if o.handover && last != nil && !errors.Is(last, ErrFenced) {
		o.err = last // the period ended on an error: report it
	}
	return o
}

// count adds a Fetch's report to the run's counters.
func (r *run) count(rep mailaccess.Report, err error) {
	r.fetched += int64(rep.Delivered)
	r.bytes += rep.Bytes
	r.f.stats.update(func(s *Stats) { s.Fetched += int64(rep.Delivered); s.Bytes += rep.Bytes })
	if err == nil {
		r.lastOK = time.Now()
	}
}

// ended classifies err, given how ctx ended.
func (r *run) ended(ctx context.Context, err error) outcome {
	switch cause := context.Cause(ctx); {
	case err == nil:
		return outcome{}
	case errors.Is(cause, ErrFenced) || errors.Is(err, ErrFenced):
		return outcome{err: &mailaccess.Error{Op: "fleet fence", Kind: mailaccess.ErrInUse, Err: ErrFenced}}
	case errors.Is(cause, errHandover):
		return outcome{handover: true}
	case errors.Is(cause, errTimeout):
		return outcome{err: &mailaccess.Error{Op: "fleet", Kind: mailaccess.ErrConnection, Err: errTimeout}}
	case ctx.Err() != nil:
		// River cancelled the job (a hard stop): due again at once.
		return outcome{handover: true}
	}
	return outcome{err: err}
}

// next decides when the account runs next, and whether it stops.
func (r *run) next(o outcome) (time.Time, bool) {
	now := time.Now()
	switch {
	case o.handover && o.err == nil:
		return now, false
	case o.err == nil && r.a.Push:
		return now.Add(jitter(time.Second)), false
	case o.err == nil:
		return now.Add(max(spread(r.a.Every), r.loginDelay)), false
	case stops(o.err):
		return now, true
	case errors.Is(o.err, ErrFenced):
		return now.Add(spread(r.a.Every)), false
	case errors.Is(o.err, mailaccess.ErrHandler) && !isKind(o.err, mailaccess.ErrState):
		// The handler refused some messages; the others were taken.
		return now.Add(spread(r.a.Every)), false
	}
	return now.Add(max(backoff(r.a.failures+1, r.f.opts.Backoff, r.f.opts.MaxBackoff), r.loginDelay)), false
}

// stops reports whether err stops the account: retrying cannot cure it.
func stops(err error) bool {
	if mailaccess.IsTemporary(err) {
		return false
	}
	for _, k := range []error{mailaccess.ErrAuth, mailaccess.ErrTLS, mailaccess.ErrUnsupported} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func isKind(err, kind error) bool { return errors.Is(err, kind) }

// record writes the run's outcome into the account's row, if this run
// still holds its fence; it reports whether it did.
func (r *run) record(o outcome, next time.Time, stop bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failures, errNS, kind, text := 0, int64(0), "", ""
	if o.err != nil {
		failures = r.a.failures + 1
		errNS, kind, text = time.Now().UnixNano(), kindOf(o.err), r.clean(o.err.Error())
	}
	okNS := int64(0)
	if !r.lastOK.IsZero() {
		okNS = r.lastOK.UnixNano()
	}
	if o.err == nil && !o.handover {
		okNS = time.Now().UnixNano()
	}
	if o.err == nil && !r.lastOK.IsZero() {
		failures = 0
	} else if o.err == nil {
		failures = r.a.failures
	}
	res, err := r.f.db.ExecContext(ctx, r.f.q.record, r.a.ID, r.token, failures, okNS, errNS, kind, text,
		next.UnixNano(), r.fetched, r.bytes, boolInt(stop))
	if err != nil {
		r.f.opts.Logger.Warn("fleet: recording an account's run failed", "account", r.a.ID, "err", r.f.fail("record", err))
		return true // the job goes on; the row says less than it could
	}
	n, err := res.RowsAffected()
	return err != nil || n > 0
}

// clean makes an error's text fit for the account's row and the log:
// without control characters, without the credentials of the run (a
// driver never shows them; this also covers a Credentials callback that
// would), and at most 500 bytes.
func (r *run) clean(s string) string {
	for _, sec := range []string{r.auth.Password} {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "xxxxx")
		}
	}
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, s)
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "..."
	}
	return s
}

// fence checks that the account's token is still this run's.
func (r *run) fence(ctx context.Context) error {
	var tok int64
	err := r.f.db.QueryRowContext(ctx, r.f.q.check, r.a.ID).Scan(&tok)
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // the run is ending: nothing is committed, nothing is wrong
	}
	return r.compare(tok, err)
}

// txFence is fence inside a write transaction of the delivery state.
func (r *run) txFence(ctx context.Context, tx *sql.Tx) error {
	var tok int64
	err := tx.QueryRowContext(ctx, r.f.q.check, r.a.ID).Scan(&tok)
	return r.compare(tok, err)
}

func (r *run) compare(tok int64, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return &mailaccess.Error{Op: "fleet fence", Kind: mailaccess.ErrInUse, Err: fmt.Errorf("%w (removed)", ErrFenced)}
	case err != nil:
		return r.f.fail("fence", err)
	case tok != r.token:
		return &mailaccess.Error{Op: "fleet fence", Kind: mailaccess.ErrInUse, Err: ErrFenced}
	}
	return nil
}
