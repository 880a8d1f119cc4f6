package mailaccess

import "fmt"

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
