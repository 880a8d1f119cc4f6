// Package unimail is unified mail access for Go programs: one Mailbox
// interface in front of POP3 and IMAP, and a retention policy that makes
// the difference between the two explicit and safe.
//
// # POP3 or IMAP: where does the mail live?
//
// POP3 was made to download mail to one device and (classically) delete it
// from the server. IMAP keeps mail on the server, in folders, for every
// device; clients hold copies. A program that reads mail (a ticket system,
// an archiver, a bot, a backup tool) makes the same choice, and must never
// lose a message on the way. unimail makes the choice a setting,
// mailaccess.Retention:
//
//   - mailaccess.KeepOnServer: leave it (IMAP style); the State remembers
//     what was delivered so the next run does not deliver it again.
//   - mailaccess.DeleteAfterFetch: delete it once the program has it
//     (classic POP).
//   - mailaccess.KeepFor(d): keep it d after its first delivery, then
//     delete it ("leave on server for 14 days").
//   - mailaccess.MoveTo(folder): move it to another folder (IMAP).
//
// Whatever the retention, a message is deleted only after the program's
// handler returned nil for it and the State recorded that durably: a
// dropped connection or a crash never loses mail, and the rare duplicate is
// bounded and documented (see package mailaccess).
//
// # Packages
//
//   - mailaccess: the protocol-free core (Mailbox, Retention, Fetcher,
//     State, errors).
//   - pop: the POP3 driver; pop/poptest: an in-process POP3 server for
//     tests.
//   - imap: the IMAP driver; imap/imaptest: an in-process IMAP server for
//     tests.
//   - mailaccess/mailaccesstest: the conformance suite every Mailbox
//     implementation passes.
//
// This package is the front door: Dial opens a mailaccess.Mailbox from a
// URL, with the scheme spelled as curl spells it:
//
//	pop3s://alice@pop.example.com          POP3 over implicit TLS (995)
//	pop3://alice@pop.example.com           POP3 with STLS required (110)
//	imaps://alice@mail.example.com/INBOX   IMAP over implicit TLS (993)
//	imap://alice@mail.example.com/Archive  IMAP with STARTTLS required (143)
//
// Cleartext (no TLS at all) needs Options.InsecureCleartext.
package unimail
