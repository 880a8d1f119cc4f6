// Package mailaccess is what a program that reads mail uses: the Fetcher
// engine, which delivers new messages from a Mailbox to a Handler and
// applies the Retention policy safely; the State that remembers what was
// delivered; and the errors, each of a kind. A Mailbox comes from
// unimail.Dial (or pop.Dial, imap.Dial); the contract that drivers
// implement is in package mailaccess/driver, and its conformance suite in
// mailaccesstest.
//
// # POP3 and IMAP
//
// POP3 was made for downloading mail to one device and deleting it from the
// server. IMAP keeps mail on the server, in folders, for every device. A
// program that reads mail makes the same choice through its Retention:
// KeepOnServer, DeleteAfterFetch, KeepFor(d) or MoveTo(folder). The
// Fetcher applies it the same way on both protocols.
//
// # The safety contract
//
//  1. A message is deleted or moved on the server only after the handler
//     returned nil for it and that fact is durable in the State. A handler
//     error means "not taken": the message stays and the next run offers it
//     again.
//  2. POP3 deletions become real only at a QUIT answered +OK. -ERR to QUIT
//     is ErrCommitFailed, an I/O error after QUIT is ErrCommitUnknown;
//     either way the State already says "delivered", so the next run deletes
//     those messages without delivering them again.
//  3. IMAP deletions are UID-scoped only (UID EXPUNGE or UID MOVE), never a
//     plain EXPUNGE that would remove other clients' messages.
//  4. A dropped connection, a crash or a kill at any instant loses nothing.
//     A message is delivered twice only if the program stopped after its
//     handler returned nil and before the State recorded it: at most one
//     group per interrupted run (see Group commit below). MoveTo on an IMAP server
//     without MOVE copies, then deletes by UID; when the copy was answered
//     and the deletion failed, the State records the copy
//     (Record.CopiedTo) and the next run only deletes. Only when the
//     connection fails while the copy itself is under way, so that its
//     outcome is unknown, does the next run copy again: the target folder
//     can then hold that run's messages twice (never zero times).
//  5. Messages that vanish between listing and fetching are reported, not
//     errors. A listed message that a fetch does not return is retried next
//     time, never taken as gone.
//  6. KeepOnServer on a POP3 server that announces EXPIRE 0 is an error
//     before anything is fetched.
//  7. When the server renumbers its UIDs (an IMAP UIDVALIDITY change, a
//     POP3 server that renumbers its UIDLs), content that
//     was already delivered is recognised by its SHA-256 fingerprint and is
//     not delivered again; the reset is reported.
//
// A program that runs one mailbox from several processes can add a check of
// its own: Fetcher.Fence is called before any deletion or move is sent and
// before the session commits; when it returns an error the session is
// aborted, nothing is deleted or moved, and the run returns that error.
// Package fleet uses it so that a worker that lost an account to another
// cannot delete from it.
//
// # Group commit
//
// Durable does not have to mean one sync per message. The Fetcher gathers
// the messages that the handler took into groups (Fetcher.Batch: 256
// messages, 8 MiB, or one second by default) and makes each group durable
// in two steps: Fetcher.Flush, when set, lets the handler's sink make its
// copies durable at once (one sync for many files), then one State.Put
// records the group. Only then does the group count as delivered and its
// retention apply, and deletions and moves are sent at the end of the run,
// after every group is recorded. So the contract holds word for word:
// nothing is deleted or moved before the handler took it and the State
// recorded it. A run that stops between a handler and the end of its
// group (a kill, a crash, a dropped connection, a Flush or a Put that
// fails) leaves that group unrecorded: its messages stay on the server and
// the next run delivers them again, at most one group. The mark of an
// incremental run never passes a group that was not recorded.
//
// # Incremental runs
//
// With an IncrementalState (MemoryState and FileState are) and a mailbox
// that can list after a UID (IMAP), KeepOnServer and KeepFor runs list
// only the messages after the State's mark, and a run with nothing new
// sends no FETCH at all. When the server's message count disagrees with
// what the State knows (mail deleted by another client), or the UIDs were
// renumbered, the run lists everything once and prunes the State. One
// plan, decided at the start of each run, says how the run lists; Run's
// look for new mail before it waits is a dry run of the same plan.
//
// Memory does not grow with the mailbox. A KeepOnServer run into a State
// that knows nothing of the mailbox yet (the first run of a backup or an
// archive) lists it 10,000 UIDs at a time when the mailbox can
// (driver.WindowLister: IMAP) and moves the mark window by window, so a
// first run over 100,000 messages holds one window of the listing, not
// all of it; and FileState keeps an index of its journal, not its records.
//
// # Whole accounts
//
// Fetcher.FetchAccount fetches every folder of an IMAP account that a
// Selection picks (IMAP LIST patterns on the decoded names, with
// exclusions; \Junk and \Trash only when asked for), one folder after
// the other on one session, each exactly as Fetch does, under the same
// safety contract. Each folder is a mailbox of its own in the State (its
// Name holds the folder), with its own UIDVALIDITY. A folder that the
// server no longer lists keeps its records and is reported; a folder that
// is new to the State but has the UID epoch of such a gone folder (a
// rename) is compared with the gone folder's records by fingerprint, so
// that its messages are not delivered again; once every one of them is
// found, the gone folder's records are dropped.
//
// # Errors
//
// Every error that unimail returns matches one of the Err* kinds with
// errors.Is, and errors.As with *Error gives the operation and the
// server's text. IsTemporary is the one rule for retrying: connection
// failures, a mailbox in use and a server that says it is unavailable are
// temporary; the end of the caller's own context never is.
//
// Without a State (nil), a run remembers nothing: KeepOnServer then
// delivers every message again on every run, and a POP3 QUIT that fails
// under DeleteAfterFetch delivers those messages again next time.
package mailaccess
