// Package driver is the contract between the mailaccess core and the
// protocol drivers, as database/sql/driver is for database/sql: the
// Mailbox interface that a driver implements, the identity of a message
// (UID, MessageInfo), and the optional capabilities that the Fetcher finds
// by type assertion (Mover, Watcher, Folders, Describer, Prefetcher,
// AfterLister, WindowLister), and Account, a session with a whole account
// of folders. Programs that read mail use package mailaccess, which
// re-exports Mailbox, UID and MessageInfo; they import driver only to
// write a driver of their own.
//
// A driver checks its behaviour with the conformance suite in package
// mailaccesstest.
package driver

import (
	"context"
	"io"
	"time"
)

// UID is a message's stable identity within one mailbox, across sessions.
//
// For POP3 it is the UIDL value (RFC 1939 section 7). For IMAP it is
// "UIDVALIDITY/UID" (for example "1700000000/42"), so that a UIDVALIDITY
// change gives every message a new UID instead of silently reusing old ones.
// A UID is opaque to everything but the driver that made it.
type UID string

// MessageInfo describes one message as listed by a Mailbox.
type MessageInfo struct {
	// UID is the message's stable identity in its mailbox.
	UID UID
	// Size is the size in octets that the server announced (POP3 LIST,
	// IMAP RFC822.SIZE), or -1 when the server did not say. Servers may
	// lie; the Fetcher enforces its size limit on the bytes it reads too.
	Size int64
	// Date is the server's arrival time of the message (IMAP INTERNALDATE)
	// when the driver was asked to list it (imap.Options.ListDates), or the
	// zero time (always for POP3, which has none).
	Date time.Time
}

// Mailbox is one open session with one mail drop: a POP3 maildrop or one
// IMAP folder.
//
// A Mailbox is not safe for concurrent use; one goroutine drives it. Every
// blocking method takes a context: when it ends, the method returns promptly
// with an error and the session is no longer usable (Abort it).
//
// Deletions are marks: Delete records them, Close commits them and Abort
// rolls them back. Implementations check their behaviour with the
// conformance suite in package mailaccesstest.
type Mailbox interface {
	// Name is the stable, secret-free identity of the mail drop that the
	// State is keyed by: protocol, user, host and folder, such as
	// "imap://alice@mail.example.com/INBOX" or "pop3://alice@pop.example.com".
	// It includes neither the port nor the TLS mode nor any credential.
	Name() string

	// List returns every message in the mail drop, in the server's order
	// (oldest first).
	List(ctx context.Context) ([]MessageInfo, error)

	// Open streams the raw RFC 5322 bytes of the message with the given
	// UID, exactly as the server stores them (CRLF line ends, no
	// transfer-level dot-stuffing). The caller must Close the reader before
	// calling any other method. An error that matches mailaccess.ErrNotFound means
	// the message is no longer on the server.
	Open(ctx context.Context, uid UID) (io.ReadCloser, error)

	// Delete marks messages for deletion. Marks take effect only at a
	// successful Close and are rolled back by Abort.
	Delete(ctx context.Context, uids ...UID) error

	// Close commits the deletion marks and ends the session. An error that
	// matches mailaccess.ErrCommitFailed means the marks were not committed; one that
	// matches mailaccess.ErrCommitUnknown means the connection failed while
	// committing, so the marks may or may not have been committed.
	Close(ctx context.Context) error

	// Abort ends the session at once and rolls back the deletion marks (as
	// far as the protocol allows: POP3 drops the connection without QUIT,
	// RFC 1939 section 6). It is safe to call after Close or another Abort.
	Abort() error
}

// Mover is implemented by mailboxes that can move messages to another
// folder on the same server (IMAP UID MOVE, RFC 6851, or UID COPY with
// UID-scoped deletion). Unlike Delete, a move takes effect at once.
type Mover interface {
	Mailbox
	// Move moves the messages to folder, creating the folder if it does
	// not exist. Messages that are no longer on the server are ignored.
	Move(ctx context.Context, folder string, uids ...UID) error
}

// Folders is implemented by mailboxes on servers with more than one folder
// (IMAP).
type Folders interface {
	Mailbox
	// Folders lists the names of the folders of the account.
	Folders(ctx context.Context) ([]string, error)
}

// Watcher is implemented by mailboxes that can wait for new mail without
// polling (IMAP IDLE, RFC 2177).
type Watcher interface {
	Mailbox
	// Wait blocks until the server reports a change in the mail drop or
	// ctx ends. A nil error means something may have changed; List again.
	// ready, when not nil, is called once, as soon as the server has
	// confirmed that it is watching (IMAP: its continuation to IDLE), so
	// that mail arriving from then on wakes the wait.
	Wait(ctx context.Context, ready func()) error
}

// Describer is implemented by mailboxes that report properties of the
// server that bear on retention. A Mailbox that does not implement it is
// taken to have stable UIDs, one UID epoch, and to keep messages until they
// are deleted.
type Describer interface {
	Mailbox
	// Describe reports what the server said about itself in this session.
	Describe() Description
}

// Description is what a Describer reports about its session.
type Description struct {
	// Protocol is "pop3" or "imap".
	Protocol string
	// UIDEpoch changes when the server renumbers every UID of the mail drop
	// (IMAP UIDVALIDITY). It is empty when the protocol has no such notion.
	UIDEpoch string
	// SessionUIDs is true when UIDs are valid for this session only (a POP3
	// server without UIDL). Only DeleteAfterFetch works then.
	SessionUIDs bool
	// DeletesOnRetrieval is true when the server deletes a message once it
	// has been retrieved (POP3 "EXPIRE 0", RFC 2449 section 6.7), so
	// KeepOnServer cannot be honoured.
	DeletesOnRetrieval bool
	// LoginDelay is the minimum time the server asks between two logins
	// (POP3 LOGIN-DELAY, RFC 2449 section 6.8); Run waits at least that
	// long between fetches. Zero when the server sets none.
	LoginDelay time.Duration
	// Capabilities lists the server's capabilities as announced, for
	// reports and logs.
	Capabilities []string
}

// Describe returns mb's Description, or the defaults when mb does not
// implement Describer.
func Describe(mb Mailbox) Description {
	if d, ok := mb.(Describer); ok {
		return d.Describe()
	}
	return Description{}
}

// Prefetcher is implemented by mailboxes that can fetch ahead: told which
// messages will be opened, in which order, they pipeline the requests
// (POP3 PIPELINING, batched IMAP UID FETCH) instead of paying one round
// trip per message. Open must still be called for each message, in that
// order; messages announced but not opened are discarded by the driver.
type Prefetcher interface {
	Mailbox
	// WillOpen announces the UIDs that the next Open calls will ask for,
	// in order. It replaces any earlier announcement.
	WillOpen(uids ...UID)
}

// AfterLister is implemented by mailboxes whose UIDs only grow within a UID
// epoch (IMAP): they can list just the messages that arrived after a given
// one, so that a run that finds no new mail costs a constant number of
// round trips however large the mailbox is.
type AfterLister interface {
	Mailbox
	// ListAfter lists, in the server's order, the messages whose UIDs
	// come after the UID after. When after belongs to another UID epoch
	// it lists every message, as List does.
	ListAfter(ctx context.Context, after UID) ([]MessageInfo, error)
	// Count returns the number of messages in the mail drop, as the server
	// last reported it.
	Count() int
}

// WindowLister is implemented by AfterListers that can list a window at a
// time (IMAP: UID FETCH of a range of UIDs), so that a run over a large
// mailbox into an empty State holds one window of the listing at a time
// instead of the whole of it.
type WindowLister interface {
	AfterLister
	// ListWindow lists, in the server's order, messages whose UIDs come
	// after the UID after (every message from the first when after is ""
	// or of another UID epoch), at most about n of them. next is where
	// the following window starts, to pass as after; it is "" when this
	// window reached the end of the mail drop, so that together the
	// windows list what one ListAfter would have. A window may be empty
	// while next is not (a range of UIDs whose messages are all gone).
	ListWindow(ctx context.Context, after UID, n int) (list []MessageInfo, next UID, err error)
}
