package mailaccess

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/unimail/unimail/mailaccess/driver"
)

// Fetcher is the engine that delivers new messages from a Mailbox to a
// Handler and applies the retention policy, keeping the safety contract of
// this package (see the package documentation). A Fetcher holds no state
// of its own between runs besides its State; it may be reused, and used
// for several mailboxes one after the other or concurrently.
type Fetcher struct {
	// Retention is what happens on the server to delivered messages; the
	// zero value is KeepOnServer.
	Retention Retention
	// State remembers what was delivered. nil means no memory: see the
	// package documentation for what that implies.
	State State
	// MaxSize, when above zero, leaves messages larger than this many
	// octets on the server, reported with ErrTooLarge; a server that
	// announces less and sends more is caught while the message streams.
	MaxSize int64
	// Flush, when set, makes durable what the handler took since the last
	// call, for handlers whose sink commits in groups (one sync for many
	// files). The handler's nil then means "taken, durable once Flush
	// returns nil": the Fetcher calls Flush at the end of each group (see
	// Batch), before it records the group in the State and before any of
	// it is deleted or moved. An error from Flush ends the run; the group
	// stays on the server and the next run offers it again.
	Flush func(ctx context.Context) error
	// Batch bounds the groups in which taken messages are made durable
	// (Flush, then one State.Put); the zero value takes the defaults.
	Batch Batch
	// StopOnError ends the run at the first message the handler refuses:
	// the messages before it are committed under the retention, that
	// message and every later one stay on the server for the next run,
	// so a program that needs arrival order gets it.
	StopOnError bool
	// Logger receives one event per message and per commit; nil means
	// none.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Tests set it to
	// exercise KeepFor.
	Now func() time.Time
	// Progress, when set, is called once the listing is known (with the
	// work to do) and after each message fetched. It runs on the fetching
	// goroutine and must return quickly.
	Progress func(Progress)
	// SpoolDir is where messages larger than 32 MiB wait while their
	// fingerprint is compared after a UID reset; "" means the system's
	// temporary directory.
	SpoolDir string
	// Fence, when set, is called before the Fetcher sends any deletion or
	// move, and again before the session commits (Close); an error aborts
	// the session (Abort: the marks are rolled back), nothing is deleted
	// or moved, and the run returns that error. A program that runs the
	// same mailbox from several processes (package fleet) uses it to
	// check that this process still owns the mailbox.
	Fence func(ctx context.Context) error
}

// fetch is the working set of one Fetch (or of Run's look for new mail).
type fetch struct {
	f      *Fetcher
	ctx    context.Context
	mb     Mailbox
	h      Handler
	name   string
	desc   driver.Description
	policy policy
	plan   plan
	log    *slog.Logger
	rep    *Report
	// known holds the records of listed messages of this UID epoch;
	// byHash the records that only a fingerprint can match (another
	// epoch, or messages gone from the listing).
	known  map[UID]Record
	byHash map[[sha256.Size]byte]Record
	loaded bool // every record was read, not only those of listed messages
	// spoolAll makes every new message spool before the handler, to
	// compare fingerprints (after a UID reset, or without stable UIDs).
	spoolAll bool
	toDelete []UID
	toMove   []Record
	recorded map[UID]bool // what this run recorded, kept only while there are fingerprint candidates
	group    group        // taken messages not yet durable
	lost     bool         // a group could not be made durable: the mark stays
	refused  []error
	stopped  bool // StopOnError met a refusal
	closed   bool // Close was called: the session is over
	// mark is the mark the run started from; taken counts, in listing
	// order, how many messages from the start of the listing were taken
	// (delivered, recognised, known, or gone), and durable how many of
	// those are durable, for the next mark.
	mark      UID
	taken     int
	durable   int
	takenOpen bool
	done      Progress
	// windows lists a window at a time, when the plan does (see
	// nextWindow); next is where the next window starts, "" after the
	// last. windowMark is the last UID of the windows before the current
	// one, all taken and durable; once a window was not, frozen holds the
	// mark at frozenMark.
	windows    driver.WindowLister
	next       UID
	windowMark UID
	frozen     bool
	frozenMark UID
}

// Fetch runs one session: it lists mb, delivers every message that the
// State does not know to h, in the server's order, applies the retention
// to delivered messages, and ends the session: Close commits the
// deletions, and on every other way out (an error, ctx ending, a handler
// that panics) Abort rolls them back. mb is always ended when Fetch
// returns.
//
// The error is nil when every message was either delivered or skipped for
// a reason in Report.Problems other than a handler error. It matches
// ErrHandler when the handler refused messages (the run went on with the
// others, unless StopOnError), ErrCommitFailed or ErrCommitUnknown when
// the deletions were not known to be committed, and otherwise the error
// that stopped the run. The Report is valid in every case.
func (f *Fetcher) Fetch(ctx context.Context, mb Mailbox, h Handler) (rep Report, err error) {
	r, err := f.start(ctx, mb, h, &rep)
	defer r.end()
	if err != nil {
		return rep, err
	}
	list, err := r.list()
	if err != nil {
		return rep, err
	}
	for {
		r.announce(list)
		err = r.deliverAll(list)
		if ferr := r.flush(); ferr != nil {
			err = errors.Join(err, ferr)
		}
		if err != nil || r.stopped || r.next == "" {
			break
		}
		r.endWindow(list)
		if list, err = r.nextWindow(r.next); err != nil {
			list = nil
			break
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrState) || isFlushError(err):
		// What was made durable may still be committed.
		if cerr := r.commit(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		r.saveMark(list)
		return rep, err
	default:
		// The session is lost or ctx ended: nothing is committed.
		r.saveMark(list)
		return rep, err
	}
	err = r.commit()
	r.saveMark(list)
	if err != nil {
		return rep, err
	}
	r.forgetCandidates()
	if len(r.refused) > 0 {
		return rep, &Error{Op: "fetch", Kind: ErrHandler, Err: fmt.Errorf("%d message(s) not taken: %w", len(r.refused), errors.Join(firstN(r.refused, 3)...))}
	}
	return rep, nil
}

// deliverAll delivers the listed messages in order, until one stops the
// run or StopOnError does. Groups are made durable as they fill.
func (r *fetch) deliverAll(list []MessageInfo) error {
	for _, info := range list {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err := r.one(info); err != nil {
			return err
		}
		if r.stopped {
			return nil
		}
		if err := r.due(); err != nil {
			return err
		}
	}
	return nil
}

// isFlushError reports whether err is Fetcher.Flush's.
func isFlushError(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Op == "flush"
}

// start checks the retention against mb and plans the run.
func (f *Fetcher) start(ctx context.Context, mb Mailbox, h Handler, rep *Report) (*fetch, error) {
	rep.Mailbox = mb.Name()
	r := &fetch{f: f, ctx: ctx, mb: mb, h: h, name: rep.Mailbox, desc: driver.Describe(mb), rep: rep,
		known: map[UID]Record{}, byHash: map[[sha256.Size]byte]Record{}}
	r.log = f.log().With("mailbox", rep.Mailbox)
	var err error
	if r.policy, err = f.check(mb, r.desc); err != nil {
		return r, err
	}
	r.plan = planFor(r.policy, mb, f.State, r.desc)
	r.group.limits = f.Batch.withDefaults()
	return r, nil
}

// end ends the session unless commit closed it. Fetch defers it, so that
// every way out ends the session the same way: Abort, which rolls the
// deletion marks back.
func (r *fetch) end() {
	if !r.closed {
		r.mb.Abort()
	}
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) log() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// fits reports whether a message of the announced size is within MaxSize.
func (f *Fetcher) fits(info MessageInfo) bool {
	return f.MaxSize <= 0 || info.Size <= f.MaxSize
}

// check refuses, before anything is fetched, a retention that the mailbox
// or the configuration cannot honour.
func (f *Fetcher) check(mb Mailbox, desc driver.Description) (policy, error) {
	ret := f.Retention
	if ret == "" {
		ret = KeepOnServer
	}
	p, err := ret.policy()
	if err != nil {
		return p, newError("fetch", ErrInvalidArgument, "", fmt.Errorf("retention %q: %w", truncate(ret.String(), 64), err))
	}
	if _, ok := mb.(driver.Mover); p.kind == policyMove && !ok {
		return p, newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: this mailbox cannot move messages", ret))
	}
	if p.kind == policyKeepFor && f.State == nil {
		return p, newError("fetch", ErrInvalidArgument, "", errors.New("retention keep-for needs a State to know when each message was first delivered"))
	}
	if desc.DeletesOnRetrieval && p.kind != policyDelete {
		return p, newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: the server deletes messages once retrieved (EXPIRE 0)", ret))
	}
	if desc.SessionUIDs && p.kind != policyDelete {
		return p, newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: the server has no stable UIDs (no UIDL), only delete works", ret))
	}
	return p, nil
}

// opens reports whether the run will open a listed message: the State
// does not know it, and it is within MaxSize.
func (r *fetch) opens(m MessageInfo) bool {
	_, known := r.known[m.UID]
	return !known && r.f.fits(m)
}

// announce reports the work of this run (the messages it will open) once
// the listing is known (or, listing a window at a time, adds the work of
// each window as it comes), and tells a Prefetcher what comes.
func (r *fetch) announce(list []MessageInfo) {
	r.done.Mailbox = r.name
	for _, m := range list {
		if r.opens(m) {
			r.done.Messages++
			r.done.Bytes += max(m.Size, 0)
		}
	}
	if r.f.Progress != nil {
		r.f.Progress(r.done)
	}
	if pf, ok := r.mb.(driver.Prefetcher); ok {
		uids := make([]UID, 0, r.done.Messages)
		for _, m := range list {
			if r.opens(m) {
				uids = append(uids, m.UID)
			}
		}
		pf.WillOpen(uids...)
	}
}

// step records the outcome of one listed message for the mark and the
// progress report.
func (r *fetch) step(taken bool, fetched bool, n int64) {
	if taken && !r.takenOpen {
		r.taken++
	} else {
		r.takenOpen = true
	}
	if fetched {
		r.done.DoneMessages++
		r.done.DoneBytes += n
		if r.f.Progress != nil {
			r.f.Progress(r.done)
		}
	}
}

func firstN(errs []error, n int) []error {
	if len(errs) > n {
		return errs[:n]
	}
	return errs
}
