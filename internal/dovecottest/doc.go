// Package dovecottest starts a real Dovecot 2.3 for a test, so that the POP3
// and IMAP drivers (and the cross-driver conformance suite) can check their
// behaviour against a real server rather than only against in-process fakes.
// One Dovecot serves both protocols from the same Maildir, which is exactly
// the POP-versus-IMAP comparison that unimail is about.
//
// # Usage
//
//	func TestSomething(t *testing.T) {
//		srv := dovecottest.Start(t, nil) // user "alice", password "alice-password"
//		srv.Seed(t, "alice", "INBOX", [][]byte{msg1, msg2}) // UIDs 1 and 2
//
//		// Talk to srv.IMAPAddr (STARTTLS), srv.IMAPSAddr (implicit TLS),
//		// srv.POP3Addr (STLS) or srv.POP3SAddr (implicit TLS), trusting the
//		// server's certificate with srv.ClientTLSConfig() or srv.CAPEM().
//
//		got := srv.Messages(t, "alice", "INBOX") // what is left on the server
//		if len(got) != 1 {
//			t.Fatalf("want one message left\n%s", srv.Log())
//		}
//	}
//
// Start skips the test when Dovecot is not installed (dovecot and doveadm in
// $PATH or the usual sbin and bin directories), unless the environment
// variable UNIMAIL_REQUIRE_DOVECOT=1 is set, as in CI, where a missing
// Dovecot fails the test. On Debian and Ubuntu, install dovecot-core,
// dovecot-imapd and dovecot-pop3d; the system's own Dovecot service is not
// used and need not run.
//
// # The server
//
// Each Start runs its own Dovecot master process (dovecot -F) on four free
// ports of 127.0.0.1, with a configuration of its own that reads nothing
// else: its base_dir, state_dir, log, certificate (self-signed ECDSA, valid
// for 127.0.0.1, ::1 and localhost), passwd-file and Maildirs are private to
// the test, in Server.Dir. Dir is on /dev/shm (tmpfs) when that has at least
// 1 GiB free, because creating thousands of small files is fast there and
// slow on some disks; otherwise it is under t.TempDir().
// Start returns when the four listeners have greeted (through verified TLS
// where they are implicit TLS), typically in well under 100 ms, and the test
// cleanup stops the server by PID (SIGTERM, then SIGKILL after 5 s) and waits
// for all of its processes.
//
// Settings that matter to tests:
//   - protocols imap and pop3; ssl = yes; STARTTLS and STLS are offered on
//     the cleartext ports, and disable_plaintext_auth = no allows cleartext
//     login there too (connections from 127.0.0.1 count as secured anyway);
//   - auth_mechanisms = plain login; a wrong password or unknown user is
//     answered at once, with no penalty delay for later logins;
//   - mail_location = maildir:~/Maildir (Maildir++: folder "A.B" is
//     Maildir/.A.B); pop3_uidl_format = %08Xu%08Xv (UID then UIDVALIDITY,
//     in hex), so a UIDVALIDITY change changes every UIDL;
//   - POP3 serves INBOX in UID order; POP3 DELE is committed at QUIT;
//   - mail_max_userip_connections = 1000, so tests may open many sessions.
//
// Options.ExtraConfig is appended to the configuration to change any of this.
//
// Run as root (as in many CI containers), Dovecot's unprivileged processes
// and all mail access run as nobody/nogroup, the Maildirs are owned by them,
// and the directories leading to Dir are made searchable by others. Run as an ordinary user, everything runs as that
// user.
//
// # Mail content
//
// Seed replaces a folder's content and Append delivers one more message
// while the server runs; both store the bytes exactly as given and never
// alter them, so pass messages with CRLF line ends, as they travel on the
// wire. (Dovecot serves a file with bare LF line ends with CRLF through both
// IMAP and POP3, so such a message would not come back byte for byte.)
// Messages returns what is on the server now, in UID order, reflecting
// expunges made through IMAP and deletions committed by POP3 QUIT.
// ResetUIDValidity makes Dovecot renumber a folder under a new UIDVALIDITY;
// UIDValidity reads the current one.
//
// Seed and ResetUIDValidity rewrite the Maildir and Dovecot's index files
// directly, so call them while no IMAP or POP3 session is open: before
// clients connect or after they have logged out. They wait up to 5 s for
// session processes that are still closing (for example right after a POP3
// QUIT) and fail the test if a session stays open. Append and Messages may be
// called at any time.
//
// Log returns the Dovecot log, to add to failure messages.
package dovecottest
