package mailaccess

import (
	"context"
	"errors"

	"github.com/unimail/unimail/mailaccess/driver"
)

// commit applies moves and deletions and ends the session with Close.
// When a move or a deletion fails, it returns the error and leaves the
// session to Fetch's deferred Abort.
func (r *fetch) commit() error {
	if len(r.toMove) > 0 {
		if err := r.fence(); err != nil {
			return err
		}
		mv := r.mb.(driver.Mover)
		folder := r.policy.folder
		uids := make([]UID, len(r.toMove))
		for i, rec := range r.toMove {
			uids[i] = rec.UID
		}
		if err := mv.Move(r.ctx, folder, uids...); err != nil {
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
		if err := r.fence(); err != nil {
			return err
		}
		if err := r.mb.Delete(r.ctx, r.toDelete...); err != nil {
			return err
		}
	}
	if err := r.fence(); err != nil {
		return err
	}
	r.closed = true
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

// fence calls Fetcher.Fence, when set. Its error leaves the session to
// Fetch's deferred Abort.
func (r *fetch) fence() error {
	if r.f.Fence == nil {
		return nil
	}
	if err := r.f.Fence(r.ctx); err != nil {
		r.log.Warn("fence refused the commit; nothing is deleted or moved", "err", err)
		return err
	}
	return nil
}

// copied records that the messages to move are already in folder, so
// that the next run removes them without copying them again.
func (r *fetch) copied(folder string) {
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

func (r *fetch) forget(uids []UID) {
	if r.f.State == nil || len(uids) == 0 || r.desc.SessionUIDs {
		return
	}
	if err := r.f.State.Forget(context.WithoutCancel(r.ctx), r.name, uids...); err != nil {
		// Harmless: the next run prunes records of messages that are gone.
		r.log.Warn("could not forget records", "err", err)
	}
}

// forgetCandidates drops the candidate records that matched nothing, once
// a run has taken every message.
func (r *fetch) forgetCandidates() {
	if r.f.State == nil || len(r.byHash) == 0 || len(r.refused) > 0 || r.stopped || r.rep.TooLarge > 0 {
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
