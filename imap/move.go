package imap

import (
	"context"
	"errors"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Move moves messages to folder at once.
//
// It sends UID MOVE (RFC 6851) when the server announces MOVE (or
// IMAP4rev2); otherwise UID COPY, UID STORE +FLAGS.SILENT (\Deleted) and
// UID EXPUNGE (RFC 4315 UIDPLUS), which touch those messages only. A
// server with neither is ErrUnsupported and nothing is sent: go-imap's own
// fallback, which ends with a plain EXPUNGE that would also remove other
// clients' \Deleted messages, is never used. When the server answers
// [TRYCREATE], the folder is created and the command tried once more.
//
// UIDs of another UIDVALIDITY are ignored (those messages are gone), as
// the server ignores UIDs that no longer exist. Errors: ErrCommitFailed
// when the server refused (nothing was moved); ErrCommitUnknown when the
// connection failed after the command was sent; for the fallback, once
// the copy was answered OK, either of them also matches
// mailaccess.ErrCopiedNotRemoved (the messages are in both folders, and a
// Fetcher's next run only removes them here); ErrInvalidArgument for a folder holding CR, LF or NUL or a
// malformed UID.
func (m *Mailbox) Move(ctx context.Context, folder string, uids ...mailaccess.UID) (err error) {
	const op = opMove
	defer func() {
		if err != nil {
			m.log.Warn("imap move failed", "folder", folder, "messages", len(uids), "err", err)
		} else {
			m.log.Info("imap move", "folder", folder, "messages", len(uids))
		}
	}()
	if err := mailerr.CheckArg("folder", folder); err != nil {
		return mailerr.WithOp(op, err)
	}
	if err := m.ready(ctx, op); err != nil {
		return err
	}
	if err := m.settleOp(ctx, op, false); err != nil {
		return err
	}
	var list []imap.UID
	for _, u := range uids {
		uid, current, err := m.parseUID(op, u)
		if err != nil {
			return err
		}
		if current {
			list = append(list, uid)
		}
	}
	if len(list) == 0 {
		return nil
	}
	slices.Sort(list)
	set := imap.UIDSetNum(list...)

	hasMove := m.caps.Has(imap.CapMove)
	if !hasMove && !m.caps.Has(imap.CapUIDPlus) {
		return mailerr.New(op, mailaccess.ErrUnsupported, "", errors.New("the server has neither MOVE nor UIDPLUS, so messages cannot be moved without touching other clients' messages"))
	}

	g := m.begin(ctx, boundTotal)
	defer g.end()

	if hasMove {
		err = m.withTryCreate(folder, func() error {
			// go-imap picks UID MOVE when the live capabilities have MOVE;
			// checked again here so that its COPY+EXPUNGE fallback can
			// never run.
			if !m.client.Caps().Has(imap.CapMove) {
				return mailerr.New(op, mailaccess.ErrUnsupported, "", errors.New("the server no longer announces MOVE"))
			}
			_, err := m.client.Move(set, folder).Wait()
			return err
		})
		return m.moveError(op, err, false)
	}

	err = m.withTryCreate(folder, func() error {
		_, err := m.client.Copy(set, folder).Wait()
		return err
	})
	if err != nil {
		return m.moveError(op, err, false)
	}
	err = m.client.Store(set, &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted},
	}, nil).Close()
	if err == nil {
		err = m.client.UIDExpunge(set).Close()
	}
	return m.moveError(op, err, true)
}

// withTryCreate runs cmd; when the server answers [TRYCREATE], it creates
// folder and runs cmd once more.
func (m *Mailbox) withTryCreate(folder string, cmd func() error) error {
	err := cmd()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeTryCreate {
		return err
	}
	if cerr := m.client.Create(folder, nil).Wait(); cerr != nil {
		if !errors.As(cerr, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
			return cerr
		}
	}
	return cmd()
}

// moveError maps a failure of a move step. copied says that the messages
// were already copied to the target folder.
func (m *Mailbox) moveError(op string, err error, copied bool) error {
	if err == nil {
		return nil
	}
	e := m.fail(op, err, nil)
	if errors.Is(e, mailaccess.ErrUnsupported) {
		return e
	}
	kind := mailaccess.ErrCommitFailed
	if errors.Is(e, mailaccess.ErrConnection) {
		kind = mailaccess.ErrCommitUnknown
	}
	var extra error
	if copied {
		extra = mailaccess.ErrCopiedNotRemoved
	}
	return mailerr.Recast(e, kind, extra)
}

// Folders lists the account's selectable folders (LIST "" "*"), sorted;
// folders marked \Noselect or \NonExistent are left out.
func (m *Mailbox) Folders(ctx context.Context) ([]string, error) {
	const op = opListFolders
	if err := m.ready(ctx, op); err != nil {
		return nil, err
	}
	if err := m.settleOp(ctx, op, false); err != nil {
		return nil, err
	}
	g := m.begin(ctx, boundTotal)
	defer g.end()
	list, err := m.client.List("", "*", nil).Collect()
	if err != nil {
		return nil, m.fail(op, err, nil)
	}
	out := make([]string, 0, len(list))
	for _, d := range list {
		if slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(d.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		out = append(out, d.Mailbox)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
