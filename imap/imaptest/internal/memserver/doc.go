// Package memserver is the in-memory mail store behind imaptest: a copy of
// imapmemserver from github.com/emersion/go-imap/v2 v2.0.0-beta.8
// (imapserver/imapmemserver, MIT licence, see LICENSE), with these
// changes:
//
//   - A whole-message body section (BODY[], BODY.PEEK[], RFC822, with or
//     without a <partial>) is served from the stored bytes. Upstream parses
//     and re-serializes the header, which changes bare-LF messages and
//     sends nothing at all for a message whose header does not parse.
//   - IDLE sends the updates that were queued before it started (upstream
//     misses them until another update comes): a message appended just as
//     a client starts IDLE is announced at once.
//   - IDLE without a selected mailbox waits for DONE (upstream ended it at
//     once).
//   - System flags are stored and sent in their RFC spelling (\Seen, not
//     \seen); keywords are still compared case-insensitively and
//     lower-cased.
//   - Create keeps the special-use attributes it is given (upstream
//     ignores them).
//   - The test server's accessors: User.Mailbox, Mailbox.Snapshot,
//     Mailbox.ExpungeAll, Mailbox.SpecialUse, Mailbox.Subscribed and
//     Mailbox.UIDValidity.
//   - The Server type and its password-checking session are left out: the
//     test server authenticates users itself.
package memserver
