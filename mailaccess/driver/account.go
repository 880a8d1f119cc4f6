package driver

import (
	"context"
	"slices"
	"strings"
)

// Folder attributes that an Account reports in FolderInfo.Attributes,
// spelt as IMAP spells them (RFC 3501 section 7.2.2, RFC 5258 section 3,
// RFC 6154 section 2). A driver of another protocol maps its own notions
// onto these.
const (
	// AttrNoSelect: the name is a node of the hierarchy that holds no
	// messages and cannot be opened.
	AttrNoSelect = `\Noselect`
	// AttrNonExistent: the name does not exist (a LIST-EXTENDED answer
	// for a parent); it cannot be opened.
	AttrNonExistent = `\NonExistent`
	// AttrAll: the folder presents every message of the account.
	AttrAll = `\All`
	// AttrArchive: the folder holds archived messages.
	AttrArchive = `\Archive`
	// AttrDrafts: the folder holds drafts.
	AttrDrafts = `\Drafts`
	// AttrFlagged: the folder presents the flagged messages.
	AttrFlagged = `\Flagged`
	// AttrJunk: the folder holds messages taken for spam.
	AttrJunk = `\Junk`
	// AttrSent: the folder holds copies of sent messages.
	AttrSent = `\Sent`
	// AttrTrash: the folder holds deleted messages.
	AttrTrash = `\Trash`
)

// FolderInfo describes one folder of an Account.
type FolderInfo struct {
	// Name is the folder's full name, decoded (IMAP's modified UTF-7,
	// RFC 3501 section 5.1.3, is the driver's business): "INBOX",
	// "Archive/2024", "Entwürfe". It is what Account.Open takes.
	Name string
	// Delimiter is the hierarchy separator inside Name, or 0 when the
	// account has no hierarchy.
	Delimiter rune
	// Attributes are the folder's attributes as the server announced
	// them, with the spelling of the Attr* constants for those (a server
	// may send them in any letter case).
	Attributes []string
	// Mailbox is the Name that the folder's Mailbox has once opened: the
	// key of its records in a State.
	Mailbox string
}

// Has reports whether the folder has the attribute attr, in any letter
// case.
func (f FolderInfo) Has(attr string) bool {
	return slices.ContainsFunc(f.Attributes, func(a string) bool { return strings.EqualFold(a, attr) })
}

// Selectable reports whether the folder can be opened: it is neither
// \Noselect nor \NonExistent.
func (f FolderInfo) Selectable() bool {
	return !f.Has(AttrNoSelect) && !f.Has(AttrNonExistent)
}

// Account is one session with a whole mail account whose mail is kept in
// folders (IMAP): it lists the folders and opens them one after the other
// on the same connection, without logging in again.
//
// An Account is not safe for concurrent use; one goroutine drives it and
// the Mailbox it opened. Abort alone may be called from any goroutine.
type Account interface {
	// Name is the stable, secret-free identity of the account: the prefix
	// that the Names of its folders' Mailboxes share, such as
	// "imap://alice@mail.example.com/".
	Name() string

	// Folders lists every folder of the account, the unselectable ones
	// too, in the server's order.
	Folders(ctx context.Context) ([]FolderInfo, error)

	// Open opens the folder called name (a FolderInfo.Name) on the
	// account's connection. One folder is open at a time: the Mailbox
	// returned must be ended (Close or Abort) before the next Open. Its
	// Close commits its deletion marks and leaves the account's session
	// open for the next folder; its Abort rolls them back and may end
	// the account's session too. An error for this folder alone (it does
	// not exist, the server refused it) leaves the session usable.
	Open(ctx context.Context, name string) (Mailbox, error)

	// Close ends the session (after the open Mailbox, if any, was
	// ended).
	Close(ctx context.Context) error

	// Abort ends the session at once, rolling back the marks of the open
	// Mailbox. It is safe to call at any time, from any goroutine, and
	// more than once.
	Abort() error
}
