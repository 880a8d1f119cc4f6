// Package e2e holds the tests that check unimail against a real Dovecot:
// the conformance suite over the four ways in (POP3S, POP3 with STLS,
// IMAPS, IMAP with STARTTLS), cross-protocol truth on one mailbox, and the
// real-world corpus delivered byte-exact through both protocols. The tests
// start their own Dovecot with package dovecottest; see that package for
// the rule when Dovecot is missing.
package e2e
