package mailaccess

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/unimail/unimail/mailaccess/driver"
)

// MailboxLister is implemented by States that can list the mailboxes
// they hold records for. Fetcher.FetchAccount uses it to report the
// folders that are gone from the server (AccountReport.Gone) and to
// recognise a renamed folder's messages. MemoryState, FileState and
// package sqlstate's State implement it.
type MailboxLister interface {
	State
	// Mailboxes returns, sorted, the names of the mailboxes that have at
	// least one record and begin with prefix ("" for every one).
	Mailboxes(ctx context.Context, prefix string) ([]string, error)
}

// renamedEpoch is the epoch given to the copies of a gone folder's
// records under a renamed folder's name: an epoch that no server gives,
// so that the Fetcher treats them as records of an earlier epoch, whose
// content only a fingerprint recognises (never a UID alone).
const renamedEpoch = "renamed-from-epoch-"

// recognizeRename prepares the run of mb when its folder is new to the
// State and a gone mailbox of the account has records of mb's UID epoch:
// those records are copied under mb's name with an epoch of their own,
// so that the Fetch compares every message's fingerprint with them and
// does not deliver again what was delivered under the old name (the
// copies are forgotten after a run that took every message, as the
// records of any earlier epoch are). It returns the gone mailbox used.
func (f *Fetcher) recognizeRename(ctx context.Context, mb Mailbox, gone []string) (string, error) {
	if f.State == nil || len(gone) == 0 {
		return "", nil
	}
	epoch := driver.Describe(mb).UIDEpoch
	if epoch == "" {
		return "", nil
	}
	// Only a folder without records is new; an IncrementalState counts
	// them without reading them.
	var known int
	if is, ok := f.State.(IncrementalState); ok {
		n, _, err := is.Count(ctx, mb.Name(), epoch)
		if err != nil {
			return "", wrapState("read", err)
		}
		known = n
	} else {
		own, err := f.State.Records(ctx, mb.Name())
		if err != nil {
			return "", wrapState("read", err)
		}
		known = len(own)
	}
	if known > 0 {
		return "", nil
	}
	for _, g := range gone {
		recs, err := f.State.Records(ctx, g)
		if err != nil {
			return "", wrapState("read", err)
		}
		if !slices.ContainsFunc(recs, func(r Record) bool { return r.Epoch == epoch }) {
			continue
		}
		copies := make([]Record, 0, len(recs))
		for _, r := range recs {
			if strings.HasPrefix(r.Epoch, renamedEpoch) {
				continue
			}
			r.Epoch = renamedEpoch + r.Epoch
			copies = append(copies, r)
		}
		if err := f.State.Put(ctx, mb.Name(), copies...); err != nil {
			return "", wrapState("write", err)
		}
		f.log().Info("folder new to the state has the UID epoch of a gone folder; its messages are compared by fingerprint", "mailbox", mb.Name(), "gone", g, "records", len(copies))
		return g, nil
	}
	return "", nil
}

// settleRename drops the records of the gone mailbox gone once every
// message delivered from it has been found again in the renamed folder's
// mailbox (a record of the same fingerprint in the folder's own epoch):
// nothing of it is then known only under the old name. It reports
// whether it did.
func (f *Fetcher) settleRename(ctx context.Context, mailbox, epoch, gone string) (bool, error) {
	recs, err := f.State.Records(ctx, mailbox)
	if err != nil {
		return false, wrapState("read", err)
	}
	found := make(map[[32]byte]bool, len(recs))
	for _, r := range recs {
		if r.Epoch == epoch {
			found[r.SHA256] = true
		}
	}
	old, err := f.State.Records(ctx, gone)
	if err != nil {
		return false, wrapState("read", err)
	}
	for _, r := range old {
		if !found[r.SHA256] {
			return false, nil
		}
	}
	if err := ForgetMailbox(ctx, f.State, gone); err != nil {
		return false, err
	}
	f.log().Info("every message of the gone folder was found in the renamed one; its records are dropped", "mailbox", mailbox, "gone", gone, "records", len(old))
	return true, nil
}

// ForgetMailbox drops every record of mailbox from st, and its mark when
// st is an IncrementalState: for a folder reported in AccountReport.Gone
// that will not come back. If it does come back, its messages are then
// delivered again.
func ForgetMailbox(ctx context.Context, st State, mailbox string) error {
	recs, err := st.Records(ctx, mailbox)
	if err != nil {
		return wrapState("read", err)
	}
	uids := make([]UID, len(recs))
	for i, r := range recs {
		uids[i] = r.UID
	}
	if len(uids) > 0 {
		if err := st.Forget(ctx, mailbox, uids...); err != nil {
			return wrapState("write", err)
		}
	}
	if is, ok := st.(IncrementalState); ok {
		if m, err := is.Mark(ctx, mailbox); err != nil {
			return wrapState("read", err)
		} else if m != "" {
			return wrapState("write", is.SetMark(ctx, mailbox, ""))
		}
	}
	return nil
}

// Mailboxes lists the mailboxes with records under prefix.
func (s *MemoryState) Mailboxes(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mailboxesOf(s.m, prefix), nil
}

// Mailboxes lists the mailboxes with records under prefix.
func (s *FileState) Mailboxes(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, stateErr("read", errors.New("state is closed"))
	}
	out := []string{}
	for name, m := range s.x.mbs {
		if m.n > 0 && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

var (
	_ MailboxLister = (*MemoryState)(nil)
	_ MailboxLister = (*FileState)(nil)
)

func mailboxesOf(m map[string]map[UID]Record, prefix string) []string {
	out := []string{}
	for name, recs := range m {
		if len(recs) > 0 && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
