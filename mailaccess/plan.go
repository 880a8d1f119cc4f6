package mailaccess

import (
	"context"
	"errors"

	"github.com/unimail/unimail/mailaccess/driver"
)

// plan is how a run lists its mailbox and which records it reads. It is
// decided once per run, here, for Fetch and for Run's look for new mail
// alike.
type plan struct {
	// incremental: the run lists only the messages after the State's
	// mark when it can, and moves the mark at its end. It needs a mailbox
	// that lists after a UID, an IncrementalState, stable UIDs, and a
	// retention that leaves taken messages on the server (KeepOnServer,
	// KeepFor): under the others the server holds only what is new or
	// still to delete, and the whole listing is what the run needs.
	incremental bool
	// lookup: on the incremental path, the run reads only the records of
	// the listed messages (KeepOnServer). KeepFor reads every record, to
	// delete the messages before the mark whose period ended.
	lookup bool
}

// planFor decides the plan of a run.
func planFor(p policy, mb Mailbox, st State, desc driver.Description) plan {
	_, lister := mb.(driver.AfterLister)
	_, indexed := st.(IncrementalState)
	keeps := p.kind == policyKeep || p.kind == policyKeepFor
	inc := lister && indexed && keeps && !desc.SessionUIDs
	return plan{incremental: inc, lookup: inc && p.kind == policyKeep}
}

// list lists the mailbox as the plan says and reads the records it needs:
// the messages after the mark when the plan is incremental and the State
// agrees with the server, otherwise every message, with every record.
func (r *fetch) list() ([]MessageInfo, error) {
	if r.plan.incremental {
		list, ok, err := r.listAfterMark()
		if err != nil || ok {
			return list, err
		}
	}
	if err := r.loadAll(); err != nil {
		return nil, err
	}
	list, err := r.mb.List(r.ctx)
	if err != nil {
		return nil, err
	}
	r.rep.Listed = len(list)
	r.candidates(list)
	return list, nil
}

// listAfterMark lists the messages after the mark. ok is false when the
// run must list every message instead: there is no mark yet, the State
// holds records of another UID epoch (a reset, whose content only the
// whole listing can recognise), or the server's message count disagrees
// with the State (mail deleted by another client), which the whole listing
// prunes.
func (r *fetch) listAfterMark() (list []MessageInfo, ok bool, err error) {
	st := r.f.State.(IncrementalState)
	al := r.mb.(driver.AfterLister)
	if r.mark, err = st.Mark(r.ctx, r.name); err != nil {
		return nil, false, wrapState("read", err)
	}
	total, inEpoch, err := st.Count(r.ctx, r.name, r.desc.UIDEpoch)
	if err != nil {
		return nil, false, wrapState("read", err)
	}
	if wl, can := r.mb.(driver.WindowLister); can && r.plan.lookup && r.mark == "" && total == 0 {
		// Nothing known yet: list a window at a time.
		r.windows = wl
		list, err := r.nextWindow("")
		return list, err == nil, err
	}
	if r.mark == "" || total != inEpoch {
		return nil, false, nil
	}
	if !r.plan.lookup {
		if err := r.loadAll(); err != nil {
			return nil, false, err
		}
	}
	if list, err = al.ListAfter(r.ctx, r.mark); err != nil {
		return nil, false, err
	}
	if r.plan.lookup && len(list) > 0 {
		uids := make([]UID, len(list))
		for i, m := range list {
			uids[i] = m.UID
		}
		recs, err := st.Lookup(r.ctx, r.name, uids...)
		if err != nil {
			return nil, false, wrapState("read", err)
		}
		for _, rec := range recs {
			if rec.Epoch == r.desc.UIDEpoch {
				r.known[rec.UID] = rec
			}
		}
	}
	// Everything up to the mark was taken and is known; if the server's
	// count says otherwise, list every message.
	inList := 0
	for _, m := range list {
		if _, ok := r.known[m.UID]; ok {
			inList++
		}
	}
	before := inEpoch - inList
	if al.Count() != before+len(list) {
		r.log.Debug("mark and server count disagree; listing every message", "count", al.Count(), "known", inEpoch)
		return nil, false, nil
	}
	r.rep.Listed = al.Count()
	r.rep.Skipped += before
	r.dueBeforeMark(list)
	return list, true, nil
}

// loadAll reads every record of the mailbox, once.
func (r *fetch) loadAll() error {
	if r.loaded || r.f.State == nil {
		return nil
	}
	r.loaded = true
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

// dueBeforeMark applies KeepFor to the known messages before the mark,
// which an incremental listing does not show.
func (r *fetch) dueBeforeMark(list []MessageInfo) {
	if r.policy.kind != policyKeepFor {
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

// candidates moves the records whose UIDs are not listed any more from
// known to the fingerprint candidates: their messages were deleted, or the
// server renumbered its UIDs (which POP3 cannot announce). New messages
// are then fingerprinted before the handler sees them, and a match is not
// delivered again. Candidates are forgotten after a run that took every
// message.
func (r *fetch) candidates(list []MessageInfo) {
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
	if r.rep.UIDReset && r.h != nil {
		r.log.Warn("UID reset: the server renumbered the mailbox; delivered content is recognised by fingerprint", "epoch", r.desc.UIDEpoch, "old_records", len(r.byHash))
	}
}

// saveMark moves the mark of an incremental plan to the last message of
// the listing before which every message was taken: in list, the current
// window, or at the end of the windows before it.
func (r *fetch) saveMark(list []MessageInfo) {
	if !r.plan.incremental {
		return
	}
	mark := r.windowMark
	switch {
	case r.frozen:
		mark = r.frozenMark
	case r.durable > 0:
		mark = list[r.durable-1].UID
	}
	if mark == "" || mark == r.mark {
		return
	}
	if err := r.f.State.(IncrementalState).SetMark(context.WithoutCancel(r.ctx), r.name, mark); err != nil {
		r.log.Warn("could not save the mark", "err", err)
	}
}

// listWindow is the number of UIDs that a listing into an empty State
// asks for at a time (driver.WindowLister): some 1 MiB of listing.
var listWindow = 10000

// nextWindow lists the window after after and reads the records of its
// messages.
func (r *fetch) nextWindow(after UID) ([]MessageInfo, error) {
	list, next, err := r.windows.ListWindow(r.ctx, after, listWindow)
	if err != nil {
		return nil, err
	}
	r.next = next
	clear(r.known)
	r.rep.Listed += len(list)
	if len(list) == 0 {
		return list, nil
	}
	uids := make([]UID, len(list))
	for i, m := range list {
		uids[i] = m.UID
	}
	recs, err := r.f.State.(IncrementalState).Lookup(r.ctx, r.name, uids...)
	if err != nil {
		return nil, wrapState("read", err)
	}
	for _, rec := range recs {
		if rec.Epoch == r.desc.UIDEpoch {
			r.known[rec.UID] = rec
		}
	}
	return list, nil
}

// endWindow closes the accounts of a window whose messages were all
// handled and its groups flushed, before the next window: the mark may
// pass it only when every message of it was taken and is durable.
func (r *fetch) endWindow(list []MessageInfo) {
	if !r.frozen {
		if r.takenOpen || r.lost || r.durable < len(list) {
			r.frozen = true
			r.frozenMark = r.windowMark
			if r.durable > 0 {
				r.frozenMark = list[r.durable-1].UID
			}
		} else if len(list) > 0 {
			r.windowMark = list[len(list)-1].UID
		}
	}
	r.taken, r.durable = 0, 0
}

// newMail reports whether mb holds a message that a Fetch would open now,
// other than those in ignore: a dry run of the same plan and listing,
// which delivers nothing and leaves the session open.
func (f *Fetcher) newMail(ctx context.Context, mb Mailbox, ignore map[UID]bool) (bool, error) {
	var rep Report
	r, err := f.start(ctx, mb, nil, &rep)
	if err != nil {
		return false, err
	}
	list, err := r.list()
	for ; err == nil; list, err = r.nextWindow(r.next) {
		for _, m := range list {
			if r.opens(m) && !ignore[m.UID] {
				return true, nil
			}
		}
		if r.next == "" {
			return false, nil
		}
	}
	return false, err
}

func wrapState(op string, err error) error {
	if err == nil || errors.Is(err, ErrState) {
		return err
	}
	return newError("state "+op, ErrState, "", err)
}
