package mailaccess

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/unimail/unimail/mailaccess/driver"
)

// Handler takes one message. Returning nil means "I have it safely": the
// Fetcher records the delivery and may then delete the message from the
// server. Returning an error means "not taken": the message stays and the
// next run offers it again. The handler must read m.Body to its end (or
// return an error) for the message to count as delivered.
type Handler func(ctx context.Context, m *Message) error

// Fetcher is the engine that delivers new messages from a Mailbox to a
// Handler and applies the retention policy, keeping the safety contract of
// this package (see the package documentation). A Fetcher holds no state
// of its own between runs besides its State; it may be reused, and used
// for several mailboxes one after the other or concurrently.
type Fetcher struct {
	// Retention is what happens on the server to delivered messages.
	// The zero value is KeepOnServer.
	Retention Retention
	// State remembers what was delivered. nil means no memory: see the
	// package documentation for what that implies.
	State State
	// MaxSize skips messages larger than this many octets (0: no limit).
	// Skipped messages stay on the server and are reported with
	// ErrTooLarge; a server that announces a small size and then sends
	// more is caught while the message streams.
	MaxSize int64
	// Logger receives one event per message and per commit. nil: none.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Tests set it to
	// exercise KeepFor.
	Now func() time.Time
	// Progress, when set, is called once the listing is known (with the
	// work to do) and after each message that was fetched. It runs on
	// the fetching goroutine and must return quickly.
	Progress func(Progress)
	// Interval is how long Run waits between two fetches when the
	// mailbox cannot wait for new mail (POP3); 0 means one minute.
	Interval time.Duration
	// WatchRefresh bounds one wait for new mail in Run (IMAP IDLE): after
	// it Run fetches again on a new connection, which also notices a dead
	// one; 0 means five minutes.
	WatchRefresh time.Duration
	// MaxBackoff caps the wait between Run's attempts after errors; 0
	// means five minutes.
	MaxBackoff time.Duration
	// AfterFetch, when set, is called by Run after each Fetch with its
	// report and error.
	AfterFetch func(Report, error)
	// SpoolDir is where messages larger than 32 MiB are spooled while
	// their fingerprint is compared after a UID reset; "" means the
	// system's temporary directory.
	SpoolDir string
}

// Progress is the state of one Fetch, for progress displays.
type Progress struct {
	// Mailbox is the Name of the mailbox.
	Mailbox string
	// Messages and Bytes are the new messages to fetch in this run and
	// their announced size.
	Messages, Bytes int64
	// DoneMessages and DoneBytes are what has been fetched so far.
	DoneMessages, DoneBytes int64
}

// MessageError is a problem with one message that did not stop the run: a
// handler error, a message too large, a message that vanished.
type MessageError struct {
	UID UID
	Err error
}

// Error returns "message UID: cause".
func (e *MessageError) Error() string { return fmt.Sprintf("message %s: %v", e.UID, e.Err) }

// Unwrap returns the cause.
func (e *MessageError) Unwrap() error { return e.Err }

// Report says what one Fetch did.
type Report struct {
	// Mailbox is the Name of the mailbox.
	Mailbox string
	// Listed is the number of messages on the server at the start.
	Listed int
	// Delivered is the number of messages the handler took in this run.
	Delivered int
	// Bytes is the number of octets delivered.
	Bytes int64
	// Skipped is the number of messages delivered by an earlier run.
	Skipped int
	// Recognized is the number of messages with new UIDs whose content had
	// already been delivered (after a UID reset); they were not delivered
	// again.
	Recognized int
	// TooLarge is the number of messages skipped for exceeding MaxSize.
	TooLarge int
	// Vanished is the number of listed messages gone before they were
	// fetched (deleted by another client).
	Vanished int
	// Failed is the number of messages the handler refused.
	Failed int
	// Deleted is the number of deletions the server committed.
	Deleted int
	// Moved is the number of messages moved to the retention's folder.
	Moved int
	// Pending is the number of deletions that were requested but not
	// known to be committed (the commit failed or its outcome is unknown);
	// the next run deletes them without delivering them again.
	Pending int
	// UIDReset is true when the server renumbered the mailbox's UIDs
	// since the last run (a UIDVALIDITY change).
	UIDReset bool
	// Problems lists the per-message problems (handler errors, messages
	// too large, vanished messages).
	Problems []*MessageError
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

// check refuses, before anything is fetched, a retention that the mailbox
// or the configuration cannot honour.
func (f *Fetcher) check(mb Mailbox, desc driver.Description) error {
	r := f.Retention
	switch r.Kind {
	case Keep, Delete, KeepForPeriod:
	case Move:
		if _, ok := mb.(driver.Mover); !ok {
			return newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: this mailbox cannot move messages", r))
		}
		if r.Folder == "" {
			return newError("fetch", ErrInvalidArgument, "", errors.New("retention move: empty folder"))
		}
		if err := checkArg("folder", r.Folder); err != nil {
			return err
		}
	default:
		return newError("fetch", ErrInvalidArgument, "", fmt.Errorf("unknown retention kind %d", r.Kind))
	}
	if r.Kind == KeepForPeriod && f.State == nil {
		return newError("fetch", ErrInvalidArgument, "", errors.New("retention keep-for needs a State to know when each message was first delivered"))
	}
	if desc.DeletesOnRetrieval && (r.Kind == Keep || r.Kind == KeepForPeriod || r.Kind == Move) {
		return newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: the server deletes messages once retrieved (EXPIRE 0)", r))
	}
	if desc.SessionUIDs && r.Kind != Delete {
		return newError("fetch", ErrUnsupported, "", fmt.Errorf("retention %s: the server has no stable UIDs (no UIDL), only delete works", r))
	}
	return nil
}

// run is the per-Fetch working set.
type run struct {
	f      *Fetcher
	ctx    context.Context
	mb     Mailbox
	h      Handler
	name   string
	desc   driver.Description
	log    *slog.Logger
	rep    *Report
	known  map[UID]Record
	byHash map[[sha256.Size]byte]Record // fingerprints that make a new UID "already delivered"
	// spoolAll makes every new message spool before the handler, to
	// compare fingerprints (after a UID reset, or without stable UIDs).
	spoolAll  bool
	toDelete  []UID
	toMove    []Record
	recorded  map[UID]bool
	handlerEs []error
	// incremental is true when only the messages after the mark were
	// listed; mark is the mark the run started from.
	incremental bool
	mark        UID
	// lazy is true while only the records of listed messages are loaded
	// (an IndexState on the incremental path); the full listing loads
	// them all first.
	lazy bool
	// taken counts, in listing order, how many messages from the start of
	// the listing were taken (delivered, recognised, known, or gone), for
	// the next mark.
	taken     int
	takenOpen bool
	done      Progress
}

// Fetch runs one session: it lists mb, delivers every message that the
// State does not know to h, in the server's order, applies the retention
// to delivered messages, and ends the session (Close commits the
// deletions; on an error it Aborts, rolling them back). mb is always ended
// when Fetch returns.
//
// The error is nil when every message was either delivered or skipped for
// a reason in Report.Problems other than a handler error. It matches
// ErrHandler when the handler refused messages (the run went on with the
// others), ErrCommitFailed or ErrCommitUnknown when the deletions were not
// known to be committed, and otherwise the error that stopped the run. The
// Report is valid in every case.
func (f *Fetcher) Fetch(ctx context.Context, mb Mailbox, h Handler) (rep Report, err error) {
	rep.Mailbox = mb.Name()
	desc := driver.Describe(mb)
	r := &run{f: f, ctx: ctx, mb: mb, h: h, name: rep.Mailbox, desc: desc, log: f.log().With("mailbox", rep.Mailbox), rep: &rep, recorded: map[UID]bool{}}
	if err := f.check(mb, desc); err != nil {
		mb.Abort()
		return rep, err
	}
	if r.lazy = r.canBeLazy(); r.lazy {
		r.known = map[UID]Record{}
		r.byHash = map[[sha256.Size]byte]Record{}
	} else if err := r.loadState(); err != nil {
		mb.Abort()
		return rep, err
	}
	list, err := r.list()
	if err != nil {
		mb.Abort()
		return rep, err
	}
	pending := r.toOpen(list)
	r.progress(pending)
	if pf, ok := mb.(driver.Prefetcher); ok {
		var next []UID
		for _, info := range pending {
			next = append(next, info.UID)
		}
		pf.WillOpen(next...)
	}
	for _, info := range list {
		if err := ctx.Err(); err != nil {
			mb.Abort()
			return rep, err
		}
		if err := r.one(info); err != nil {
			// The session is unusable or the state failed: commit what is
			// safe to commit only if the mailbox still works.
			if errors.Is(err, ErrState) {
				if cerr := r.commit(); cerr != nil {
					return rep, errors.Join(err, cerr)
				}
				return rep, err
			}
			mb.Abort()
			return rep, err
		}
	}
	if err := r.commit(); err != nil {
		r.saveMark(list)
		return rep, err
	}
	r.saveMark(list)
	r.forgetCandidates()
	if len(r.handlerEs) > 0 {
		return rep, &Error{Op: "fetch", Kind: ErrHandler, Err: fmt.Errorf("%d message(s) not taken: %w", len(r.handlerEs), errors.Join(firstN(r.handlerEs, 3)...))}
	}
	return rep, nil
}

// list lists the mailbox: only the messages after the mark when the
// mailbox and the State allow it and the retention needs no full view,
// otherwise every message.
func (r *run) list() ([]MessageInfo, error) {
	al, okL := r.mb.(driver.AfterLister)
	ms, okS := r.f.State.(MarkState)
	kind := r.f.Retention.Kind
	if okL && okS && (kind == Keep || kind == KeepForPeriod) && !r.desc.SessionUIDs {
		mark, err := ms.Mark(r.ctx, r.name)
		if err != nil {
			return nil, wrapState("read", err)
		}
		known := len(r.known)
		if r.lazy && mark != "" {
			total, inEpoch, err := r.f.State.(IndexState).Count(r.ctx, r.name, r.desc.UIDEpoch)
			if err != nil {
				return nil, wrapState("read", err)
			}
			if total != inEpoch {
				mark = "" // records of another epoch: a UID reset
			}
			known = inEpoch
		}
		if mark != "" && !r.rep.UIDReset {
			list, err := al.ListAfter(r.ctx, mark)
			if err != nil {
				return nil, err
			}
			if r.lazy && len(list) > 0 {
				uids := make([]UID, len(list))
				for i, m := range list {
					uids[i] = m.UID
				}
				recs, err := r.f.State.(IndexState).Lookup(r.ctx, r.name, uids...)
				if err != nil {
					return nil, wrapState("read", err)
				}
				for _, rec := range recs {
					if rec.Epoch == r.desc.UIDEpoch {
						r.known[rec.UID] = rec
					}
				}
			}
			// Everything up to the mark was taken and is known; if the
			// server's count disagrees, messages were deleted or the mark
			// is stale: fall back to the full listing.
			inList := 0
			for _, m := range list {
				if _, ok := r.known[m.UID]; ok {
					inList++
				}
			}
			before := known - inList
			if al.Count() == before+len(list) {
				r.incremental = true
				r.mark = mark
				r.rep.Listed = al.Count()
				r.rep.Skipped += before
				r.dueFromState(list)
				return list, nil
			}
			r.log.Debug("mark and server count disagree; listing every message", "count", al.Count(), "known", known)
		}
	}
	if r.lazy {
		// The full listing needs every record.
		r.lazy = false
		if err := r.loadState(); err != nil {
			return nil, err
		}
	}
	list, err := r.mb.List(r.ctx)
	if err != nil {
		return nil, err
	}
	r.rep.Listed = len(list)
	r.candidates(list)
	return list, nil
}

// dueFromState applies KeepFor to the known messages before the mark,
// which an incremental listing does not show.
func (r *run) dueFromState(list []MessageInfo) {
	if r.f.Retention.Kind != KeepForPeriod {
		return
	}
	listed := make(map[UID]bool, len(list))
	for _, m := range list {
		listed[m.UID] = true
	}
	for u, rec := range r.known {
		if !listed[u] {
			r.apply(rec)
		}
	}
}

// progress reports the work of this run (the messages it will open) once
// the listing is known.
func (r *run) progress(pending []MessageInfo) {
	r.done = Progress{Mailbox: r.name}
	for _, m := range pending {
		r.done.Messages++
		if m.Size > 0 {
			r.done.Bytes += m.Size
		}
	}
	if r.f.Progress != nil {
		r.f.Progress(r.done)
	}
}

// toOpen returns the listed messages the run will open: those the State
// does not know, within MaxSize.
func (r *run) toOpen(list []MessageInfo) []MessageInfo {
	var out []MessageInfo
	for _, m := range list {
		if _, ok := r.known[m.UID]; ok {
			continue
		}
		if r.f.MaxSize > 0 && m.Size > r.f.MaxSize {
			continue
		}
		out = append(out, m)
	}
	return out
}

// step records the outcome of one listed message for the mark and the
// progress report.
func (r *run) step(taken bool, fetched bool, n int64) {
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

// saveMark moves the mark to the last message of the listing before which
// every message was taken.
func (r *run) saveMark(list []MessageInfo) {
	ms, ok := r.f.State.(MarkState)
	if !ok || r.desc.SessionUIDs || r.taken == 0 {
		return
	}
	if _, ok := r.mb.(driver.AfterLister); !ok {
		return
	}
	mark := list[r.taken-1].UID
	if mark == r.mark {
		return
	}
	if err := ms.SetMark(context.WithoutCancel(r.ctx), r.name, mark); err != nil {
		r.log.Warn("could not save the mark", "err", err)
	}
}

func firstN(errs []error, n int) []error {
	if len(errs) > n {
		return errs[:n]
	}
	return errs
}

// canBeLazy says whether the run may start without loading every record:
// a KeepOnServer run with an IndexState on an driver.AfterLister with stable
// UIDs, which lists only the messages after the mark when it can.
func (r *run) canBeLazy() bool {
	_, okS := r.f.State.(IndexState)
	_, okL := r.mb.(driver.AfterLister)
	return okS && okL && r.f.Retention.Kind == Keep && !r.desc.SessionUIDs
}

func (r *run) loadState() error {
	r.known = map[UID]Record{}
	r.byHash = map[[sha256.Size]byte]Record{}
	if r.f.State == nil {
		return nil
	}
	recs, err := r.f.State.Records(r.ctx, r.name)
	if err != nil {
		return wrapState("read", err)
	}
	for _, rec := range recs {
		if rec.Epoch == r.desc.UIDEpoch && !r.desc.SessionUIDs {
			r.known[rec.UID] = rec
			continue
		}
		// A record of another UID epoch (or of a server without stable
		// UIDs): only its fingerprint can match.
		if !r.desc.SessionUIDs {
			r.rep.UIDReset = true
		}
		r.byHash[rec.SHA256] = rec
	}
	return nil
}

// candidates moves the records whose UIDs are not listed any more from
// known to the fingerprint candidates: their messages were deleted, or the
// server renumbered its UIDs (which POP3 cannot announce). New messages
// are then fingerprinted before the handler sees them, and a match is not
// delivered again. Candidates are forgotten after a run that took every
// message.
func (r *run) candidates(list []MessageInfo) {
	if len(r.known) > 0 {
		on := make(map[UID]struct{}, len(list))
		for _, m := range list {
			on[m.UID] = struct{}{}
		}
		for u, rec := range r.known {
			if _, ok := on[u]; !ok {
				r.byHash[rec.SHA256] = rec
				delete(r.known, u)
			}
		}
	}
	if len(r.known) < len(list) && len(r.byHash) > 0 {
		r.spoolAll = true
	}
	if r.rep.UIDReset {
		r.log.Warn("UID reset: the server renumbered the mailbox; delivered content is recognised by fingerprint", "epoch", r.desc.UIDEpoch, "old_records", len(r.byHash))
	}
}

func wrapState(op string, err error) error {
	if errors.Is(err, ErrState) {
		return err
	}
	return newError("state "+op, ErrState, "", err)
}

// forgetCandidates drops the candidate records that matched nothing, once
// a run has taken every message.
func (r *run) forgetCandidates() {
	if r.f.State == nil || len(r.byHash) == 0 || len(r.handlerEs) > 0 || r.rep.TooLarge > 0 {
		return
	}
	var old []UID
	for _, rec := range r.byHash {
		if !r.recorded[rec.UID] {
			old = append(old, rec.UID)
		}
	}
	if len(old) == 0 {
		return
	}
	if err := r.f.State.Forget(context.WithoutCancel(r.ctx), r.name, old...); err != nil {
		r.log.Warn("could not forget old records", "err", err)
	}
}

func (r *run) problem(uid UID, err error) {
	r.rep.Problems = append(r.rep.Problems, &MessageError{UID: uid, Err: err})
}

// apply decides the retention of a delivered message, given its record.
func (r *run) apply(rec Record) {
	switch ret := r.f.Retention; ret.Kind {
	case Delete:
		r.toDelete = append(r.toDelete, rec.UID)
	case KeepForPeriod:
		if !r.f.now().Before(rec.Delivered.Add(ret.Period)) {
			r.toDelete = append(r.toDelete, rec.UID)
		}
	case Move:
		if rec.CopiedTo != "" && rec.CopiedTo == ret.Folder {
			// An earlier move copied it but could not remove it here:
			// removing it finishes the move without a second copy.
			r.toDelete = append(r.toDelete, rec.UID)
			return
		}
		r.toMove = append(r.toMove, rec)
	}
}

// one handles one listed message. A returned error stops the run.
func (r *run) one(info MessageInfo) error {
	if rec, ok := r.known[info.UID]; ok {
		r.rep.Skipped++
		r.apply(rec)
		r.step(true, false, 0)
		return nil
	}
	log := msgLog{ctx: r.ctx, l: r.log, uid: info.UID, size: info.Size}
	if max := r.f.MaxSize; max > 0 && info.Size > max {
		r.rep.TooLarge++
		r.problem(info.UID, newError("fetch", ErrTooLarge, "", fmt.Errorf("%d octets announced, limit %d", info.Size, max)))
		log.Warn("message too large, left on the server")
		r.step(false, false, 0)
		return nil
	}
	body, err := r.mb.Open(r.ctx, info.UID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			r.rep.Vanished++
			r.problem(info.UID, err)
			log.Info("message vanished before it was fetched")
			r.step(true, true, 0)
			return nil
		}
		return err
	}
	m := &meter{r: body, max: r.f.MaxSize}
	if r.f.State != nil {
		// The fingerprint is kept only in a State.
		m.h = sha256.New()
	}
	var src io.Reader = m
	var sp *spool
	if r.spoolAll {
		sp, err = newSpool(m, r.f.SpoolDir)
		if err == nil {
			err = m.err // a transport error or ErrTooLarge while spooling
		}
		body.Close()
		if err != nil {
			sp.close()
			return r.readFailed(info, m, err, log)
		}
		defer sp.close()
		var sum [sha256.Size]byte
		copy(sum[:], m.sum())
		if old, ok := r.byHash[sum]; ok {
			rec := Record{UID: info.UID, Epoch: r.desc.UIDEpoch, Delivered: old.Delivered, Size: m.n, SHA256: sum}
			if err := r.record(rec); err != nil {
				return err
			}
			r.rep.Recognized++
			if old.Epoch == r.desc.UIDEpoch && !r.desc.SessionUIDs {
				r.rep.UIDReset = true // renumbered without an epoch change
			}
			r.apply(rec)
			log.Info("content already delivered under another UID; not delivered again")
			r.step(true, true, m.n)
			return nil
		}
		src = sp.reader()
	}
	msg := &Message{Mailbox: r.name, Info: info, Body: src}
	herr := r.call(msg)
	if herr == nil && sp == nil {
		// The message counts only when it was read to its end.
		_, _ = io.Copy(io.Discard, m)
	}
	if sp == nil {
		cerr := body.Close()
		if m.err == nil && cerr != nil && !m.eof {
			m.err = cerr
		}
	}
	if sp == nil && m.err != nil {
		return r.readFailed(info, m, m.err, log)
	}
	if herr != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		r.rep.Failed++
		r.handlerEs = append(r.handlerEs, &MessageError{UID: info.UID, Err: herr})
		r.problem(info.UID, herr)
		log.Warn("handler refused the message; it stays on the server", "err", herr)
		r.step(false, true, m.n)
		return nil
	}
	var sum [sha256.Size]byte
	copy(sum[:], m.sum())
	rec := Record{UID: info.UID, Epoch: r.desc.UIDEpoch, Delivered: r.f.now(), Size: m.n, SHA256: sum}
	if err := r.record(rec); err != nil {
		return err
	}
	r.rep.Delivered++
	r.rep.Bytes += m.n
	r.apply(rec)
	log.Info("delivered", "bytes", m.n)
	r.step(true, true, m.n)
	return nil
}

// readFailed classifies an error met while reading a message: too large
// is a per-message problem, anything else ends the run.
func (r *run) readFailed(info MessageInfo, m *meter, err error, log msgLog) error {
	if errors.Is(err, ErrTooLarge) {
		r.rep.TooLarge++
		r.problem(info.UID, err)
		log.Warn("message larger than announced and than the limit; left on the server")
		r.step(false, true, m.n)
		return nil
	}
	return err
}

// call runs the handler, turning a panic into a returned panic after the
// session is aborted (so that nothing is committed).
func (r *run) call(msg *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.mb.Abort()
			panic(p)
		}
	}()
	return r.h(r.ctx, msg)
}

func (r *run) record(rec Record) error {
	if r.desc.SessionUIDs {
		// Session UIDs mean nothing in the next session: key the record
		// by its fingerprint instead.
		rec.UID = UID("sha256:" + hex.EncodeToString(rec.SHA256[:]))
		rec.Epoch = ""
	}
	if r.f.State == nil {
		r.recorded[rec.UID] = true
		return nil
	}
	// The record must be written even if ctx ends right now: the handler
	// already has the message.
	if err := r.f.State.Put(context.WithoutCancel(r.ctx), r.name, rec); err != nil {
		return wrapState("write", err)
	}
	r.recorded[rec.UID] = true
	return nil
}

// commit applies moves and deletions and ends the session.
func (r *run) commit() error {
	if len(r.toMove) > 0 {
		mv := r.mb.(driver.Mover)
		folder := r.f.Retention.Folder
		uids := make([]UID, len(r.toMove))
		for i, rec := range r.toMove {
			uids[i] = rec.UID
		}
		if err := mv.Move(r.ctx, folder, uids...); err != nil {
			r.mb.Abort()
			if errors.Is(err, ErrCopiedNotRemoved) {
				r.copied(folder)
			}
			return err
		}
		r.rep.Moved = len(r.toMove)
		r.log.Info("moved", "count", len(r.toMove), "folder", folder)
		r.forget(uids)
	}
	if len(r.toDelete) > 0 {
		if err := r.mb.Delete(r.ctx, r.toDelete...); err != nil {
			r.mb.Abort()
			return err
		}
	}
	if err := r.mb.Close(r.ctx); err != nil {
		r.rep.Pending = len(r.toDelete)
		r.log.Warn("commit not confirmed; the next run deletes these messages", "pending", len(r.toDelete), "err", err)
		return err
	}
	r.rep.Deleted = len(r.toDelete)
	if len(r.toDelete) > 0 {
		r.log.Info("deleted", "count", len(r.toDelete))
	}
	r.forget(r.toDelete)
	return nil
}

// copied records that the messages to move are already in folder, so
// that the next run removes them without copying them again.
func (r *run) copied(folder string) {
	if r.f.State == nil || r.desc.SessionUIDs {
		return
	}
	recs := make([]Record, len(r.toMove))
	for i, rec := range r.toMove {
		rec.CopiedTo = folder
		recs[i] = rec
	}
	if err := r.f.State.Put(context.WithoutCancel(r.ctx), r.name, recs...); err != nil {
		// The next run copies them again: a second copy in folder, no loss.
		r.log.Warn("could not record the copies; the next run copies these messages again", "count", len(recs), "err", err)
	}
}

func (r *run) forget(uids []UID) {
	if r.f.State == nil || len(uids) == 0 || r.desc.SessionUIDs {
		return
	}
	if err := r.f.State.Forget(context.WithoutCancel(r.ctx), r.name, uids...); err != nil {
		// Harmless: the next run prunes records of messages that are gone.
		r.log.Warn("could not forget records", "err", err)
	}
}

// msgLog logs the events of one message with its UID and size. Unlike a
// Logger.With per message, it costs nothing for the events the handler
// does not want.
type msgLog struct {
	ctx  context.Context
	l    *slog.Logger
	uid  UID
	size int64
}

func (m msgLog) log(level slog.Level, msg string, args []any) {
	if !m.l.Enabled(m.ctx, level) {
		return
	}
	m.l.Log(m.ctx, level, msg, append([]any{"uid", string(m.uid), "size", m.size}, args...)...)
}

// Info logs at Info.
func (m msgLog) Info(msg string, args ...any) { m.log(slog.LevelInfo, msg, args) }

// Warn logs at Warn.
func (m msgLog) Warn(msg string, args ...any) { m.log(slog.LevelWarn, msg, args) }

// meter counts, hashes and limits the bytes of one message.
type meter struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
	err error
	eof bool
}

func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.eof {
		return 0, io.EOF
	}
	n, err := m.r.Read(p)
	if n > 0 {
		if m.h != nil {
			m.h.Write(p[:n])
		}
		m.n += int64(n)
		if m.max > 0 && m.n > m.max {
			m.err = newError("fetch", ErrTooLarge, "", fmt.Errorf("more than %d octets", m.max))
			return 0, m.err
		}
	}
	if err == io.EOF {
		m.eof = true
	} else if err != nil {
		m.err = err
	}
	return n, err
}

// sum returns the SHA-256 of the bytes read, or nil when not hashing.
func (m *meter) sum() []byte {
	if m.h == nil {
		return nil
	}
	return m.h.Sum(nil)
}

// spool holds one whole message, in memory up to spoolMem and in a
// temporary file beyond.
type spool struct {
	mem  bytes.Buffer
	file *os.File
}

const spoolMem = 32 << 20

func newSpool(r io.Reader, dir string) (*spool, error) {
	s := &spool{}
	_, err := io.CopyN(&s.mem, r, spoolMem+1)
	if err == io.EOF {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	f, err := os.CreateTemp(dir, "unimail-spool-*")
	if err != nil {
		return s, err
	}
	os.Remove(f.Name())
	s.file = f
	if _, err := s.mem.WriteTo(f); err != nil {
		return s, err
	}
	if _, err := io.Copy(f, r); err != nil {
		return s, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return s, err
}

func (s *spool) reader() io.Reader {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem.Bytes())
}

func (s *spool) close() {
	if s != nil && s.file != nil {
		s.file.Close()
	}
}
