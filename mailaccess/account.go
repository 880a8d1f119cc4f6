package mailaccess

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/unimail/unimail/mailaccess/driver"
)

// AccountHandler takes one message of one folder of an account, as a
// Handler does, with the folder it comes from; its nil and its errors
// mean what a Handler's do.
type AccountHandler func(ctx context.Context, folder FolderInfo, m *Message) error

// AccountReport says what one FetchAccount did.
type AccountReport struct {
	// Account is the Name of the account.
	Account string
	// Folders has one report per selected folder, in the order fetched.
	Folders []FolderReport
	// Gone lists the mailboxes (Mailbox Names) of this account that the
	// State holds records for but whose folders the server no longer
	// lists: folders deleted since an earlier run, or renamed ones whose
	// messages were not all found again under the new name. Their records
	// are kept, so that nothing is delivered again if the folder comes
	// back; ForgetMailbox drops them. It is filled only with a State that
	// implements MailboxLister.
	Gone []string
}

// FolderReport says what FetchAccount did with one folder.
type FolderReport struct {
	// Folder is the folder as listed.
	Folder FolderInfo
	// Report is the Fetch of the folder (empty when Err is an error of
	// opening it).
	Report Report
	// RenamedFrom, when not empty, is the gone mailbox whose records the
	// folder's messages were recognised against, by fingerprint: the
	// folder is new to the State, and its UID epoch is that of the gone
	// folder's records (a rename, after which IMAP servers such as
	// Dovecot keep UIDVALIDITY and UIDs). Content found there is not
	// delivered again; Report.Recognized counts it. When the run found
	// every message of the gone mailbox here, the gone mailbox's records
	// are dropped (all of them now live under this folder) and it is not
	// in AccountReport.Gone.
	RenamedFrom string
	// Err is the folder's error: opening it, or the error of its Fetch.
	Err error
}

// Totals adds up the reports of the folders.
func (r *AccountReport) Totals() Report {
	t := Report{Mailbox: r.Account}
	for _, f := range r.Folders {
		x := &f.Report
		t.Listed += x.Listed
		t.Delivered += x.Delivered
		t.Bytes += x.Bytes
		t.Skipped += x.Skipped
		t.Recognized += x.Recognized
		t.TooLarge += x.TooLarge
		t.Vanished += x.Vanished
		t.Failed += x.Failed
		t.Deleted += x.Deleted
		t.Moved += x.Moved
		t.Pending += x.Pending
		t.UIDReset = t.UIDReset || x.UIDReset
		t.Problems = append(t.Problems, x.Problems...)
	}
	return t
}

// FetchAccount fetches every folder of acct that sel selects (nil takes
// every folder but \Junk and \Trash, see Selection), one after the other
// on the account's one session, each exactly as Fetch does: the same
// retention, State, limits and safety contract, word for word, per
// folder. A MoveTo retention's own folder is never selected (what is
// moved there would be fetched again). The folder's Mailbox Name (which
// holds the folder) keys its records, so each folder keeps its own UIDs
// and UIDVALIDITY.
//
// A folder that the State knows but the server no longer lists is
// reported in AccountReport.Gone and its records kept. A selected folder
// new to the State whose UID epoch is that of a gone folder's records (a
// renamed folder) has its messages compared with those records by
// fingerprint first, so that what was delivered under the old name is
// not delivered again (FolderReport.RenamedFrom); once all of it is found
// there, the gone folder's records are dropped.
//
// The error of one folder (the server refuses to open it, its handler
// refused messages, ...) is in its FolderReport and the other folders go
// on; once the session is lost, the folders after it report that error.
// FetchAccount returns nil when every folder's Fetch did; otherwise the
// folders' errors joined, each prefixed with its folder's name (errors.Is
// matches the kind of any of them). It fails before fetching anything
// with an error matching ErrInvalidArgument for a bad pattern, and
// ErrNotFound when no folder matches. acct is always ended when
// FetchAccount returns.
func (f *Fetcher) FetchAccount(ctx context.Context, acct Account, sel *Selection, h AccountHandler) (rep AccountReport, err error) {
	rep.Account = acct.Name()
	ended := false
	defer func() {
		if !ended {
			acct.Abort()
		}
	}()
	if err := sel.Check(); err != nil {
		return rep, err
	}
	all, err := acct.Folders(ctx)
	if err != nil {
		return rep, err
	}
	folders, err := sel.Select(all)
	if err != nil {
		return rep, err
	}
	if target := f.Retention.Folder(); target != "" {
		folders = slices.DeleteFunc(folders, func(fi FolderInfo) bool { return sameFolder(fi.Name, target) })
	}
	if len(folders) == 0 {
		return rep, newError("fetch account", ErrNotFound, "", fmt.Errorf("no folder of %d matches the selection %s", len(all), describeSelection(sel)))
	}
	if rep.Gone, err = f.gone(ctx, rep.Account, all); err != nil {
		return rep, err
	}
	var (
		errs    []error
		settled []string // gone mailboxes found again whole in renamed folders
	)
	for _, fi := range folders {
		fr := FolderReport{Folder: fi}
		if err := ctx.Err(); err != nil {
			fr.Err = newError("fetch account", ErrConnection, "", err)
		} else {
			fr.Report, fr.RenamedFrom, fr.Err = f.fetchFolder(ctx, acct, fi, rep.Gone, &settled, h)
		}
		if fr.Err != nil {
			errs = append(errs, fmt.Errorf("folder %q: %w", fi.Name, fr.Err))
		}
		rep.Folders = append(rep.Folders, fr)
	}
	rep.Gone = slices.DeleteFunc(rep.Gone, func(g string) bool { return slices.Contains(settled, g) })
	ended = true
	if err := acct.Close(context.WithoutCancel(ctx)); err != nil && len(errs) == 0 {
		f.log().Warn("account logout failed", "account", rep.Account, "err", err)
	}
	return rep, errors.Join(errs...)
}

// fetchFolder opens one folder and fetches it.
func (f *Fetcher) fetchFolder(ctx context.Context, acct Account, fi FolderInfo, gone []string, settled *[]string, h AccountHandler) (Report, string, error) {
	mb, err := acct.Open(ctx, fi.Name)
	if err != nil {
		return Report{Mailbox: fi.Mailbox}, "", err
	}
	from, err := f.recognizeRename(ctx, mb, gone)
	if err != nil {
		mb.Abort()
		return Report{Mailbox: mb.Name()}, "", err
	}
	epoch := driver.Describe(mb).UIDEpoch
	rep, err := f.Fetch(ctx, mb, func(ctx context.Context, m *Message) error { return h(ctx, fi, m) })
	if from != "" && err == nil {
		if done, serr := f.settleRename(context.WithoutCancel(ctx), rep.Mailbox, epoch, from); serr != nil {
			err = serr
		} else if done {
			*settled = append(*settled, from)
		}
	}
	return rep, from, err
}

// gone lists the mailboxes under the account's prefix that the State has
// records for and the server does not list.
func (f *Fetcher) gone(ctx context.Context, account string, all []FolderInfo) ([]string, error) {
	ml, ok := f.State.(MailboxLister)
	if !ok || account == "" {
		return nil, nil
	}
	names, err := ml.Mailboxes(ctx, account)
	if err != nil {
		return nil, wrapState("read", err)
	}
	present := make(map[string]bool, len(all))
	for _, fi := range all {
		present[fi.Mailbox] = true
	}
	var out []string
	for _, n := range names {
		if !present[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// sameFolder reports whether two decoded folder names name the same
// folder (INBOX in any letter case).
func sameFolder(a, b string) bool {
	return a == b || (strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX"))
}

func describeSelection(s *Selection) string {
	if s == nil || len(s.Include) == 0 {
		return "(every folder)"
	}
	b := strings.Join(s.Include, ", ")
	if len(s.Exclude) > 0 {
		b += " excluding " + strings.Join(s.Exclude, ", ")
	}
	return truncate(b, 200)
}
