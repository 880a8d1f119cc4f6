package dovecottest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// CreateFolder creates the user's folder with doveadm, as an IMAP CREATE
// would. The name is UTF-8 with '.' between levels, any characters but
// CR, LF and NUL (Dovecot stores it in modified UTF-7); its parents are
// created too. It may run while sessions are open.
func (s *Server) CreateFolder(tb testing.TB, user, folder string) {
	tb.Helper()
	s.doveadmFolder(tb, "mailbox", "create", "-s", "-u", user, folder)
}

// RenameFolder renames the user's folder with doveadm, as IMAP RENAME
// does: Dovecot keeps its UIDVALIDITY and its messages' UIDs, and renames
// its sub-folders with it. It may run while sessions are open.
func (s *Server) RenameFolder(tb testing.TB, user, folder, newName string) {
	tb.Helper()
	s.doveadmFolder(tb, "mailbox", "rename", "-s", "-u", user, folder, newName)
}

// DeleteFolder deletes the user's folder and its messages with doveadm, as
// IMAP DELETE does. It may run while sessions are open.
func (s *Server) DeleteFolder(tb testing.TB, user, folder string) {
	tb.Helper()
	s.doveadmFolder(tb, "mailbox", "delete", "-s", "-u", user, folder)
}

// Save delivers raw into the user's folder with doveadm save, for folder
// names that Append does not take (non-ASCII ones). The bytes come back
// over IMAP as given when they have CRLF line ends.
func (s *Server) Save(tb testing.TB, user, folder string, raw []byte) {
	tb.Helper()
	s.doveadmIn(tb, raw, "save", "-u", user, "-m", folder)
}

func (s *Server) doveadmFolder(tb testing.TB, args ...string) {
	tb.Helper()
	s.doveadmIn(tb, nil, args...)
}

func (s *Server) doveadmIn(tb testing.TB, stdin []byte, args ...string) {
	tb.Helper()
	for _, a := range args {
		if strings.ContainsAny(a, "\r\n\x00") {
			tb.Fatalf("dovecottest: doveadm argument %q holds CR, LF or NUL", a)
			return
		}
	}
	cmd := exec.Command(s.doveadm, append([]string{"-c", s.conf}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("dovecottest: doveadm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
}
