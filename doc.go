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
//   - mailaccess: what a program that reads mail uses (Fetcher,
//     Retention, State, Message, errors); mailaccess/driver: the contract
//     that drivers implement.
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
//
// DialAccount opens a whole IMAP account instead, for backup, migration
// and archiving: the URL's path is then an IMAP LIST pattern of the folders
// to fetch ("imaps://alice@mail.example.com/*", ".../Archive/%"), and
// mailaccess.Fetcher.FetchAccount fetches them one after the other on one
// connection.
//
// # OAuth 2.0 (Gmail, Microsoft 365)
//
// Providers that have turned off passwords for POP3 and IMAP take an OAuth
// 2.0 access token instead, through SASL XOAUTH2 (Google's and Microsoft's)
// or OAUTHBEARER (RFC 7628). Give Dial an oauth2.TokenSource
// (golang.org/x/oauth2) in Options.TokenSource, usually
// oauth2.Config.TokenSource with the refresh token from an earlier
// authorization, and the user name in Options.Auth.Username or the URL:
//
//	tokens := unimail.NewTokenCache(nil, conf.TokenSource(ctx, saved))
//	mb, err := unimail.Dial(ctx, "imaps://imap.gmail.com", &unimail.Options{
//		DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: "alice@gmail.com"}},
//		TokenSource: tokens,
//	})
//
// The mechanism is the one Auth.Mechanism or the URL's ;AUTH=XOAUTH2 or
// ;AUTH=OAUTHBEARER names, else OAUTHBEARER when the server offers it and
// XOAUTH2 otherwise. Dial takes a token from the source for every
// connection, before connecting, so an expired token is refreshed by the
// source and a source that fails (a revoked refresh token: a permanent
// mailaccess.ErrAuth; an unreachable token endpoint: a temporary one) costs
// no connection. A server may also refuse a token that has not expired
// (it was revoked, or the clocks disagree): then Dial gets a new token at
// once, past the source's cache, and logs in once more; only a second
// refusal is mailaccess.ErrAuth. A TokenCache shared by all the Dials of an account
// keeps the refreshed token for the next ones and lets concurrent Dials
// share one refresh. Tokens never appear in errors or in what String and
// slog print.
package unimail
