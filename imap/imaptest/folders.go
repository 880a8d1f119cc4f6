package imaptest

// RenameFolder renames folder of user to newName, keeping its messages,
// UIDs and UIDVALIDITY, as IMAP RENAME does on servers such as Dovecot
// (its sub-folders keep their names). Clients that have the folder
// selected keep their view of it.
func (s *Server) RenameFolder(name, folder, newName string) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	if err := u.mem.Rename(folder, newName, nil); err != nil {
		s.failf("imaptest: renaming folder %q to %q: %v", folder, newName, err)
	}
}

// DeleteFolder deletes folder of user with its messages, as IMAP DELETE
// does. A folder created again with the same name gets a new UIDVALIDITY.
func (s *Server) DeleteFolder(name, folder string) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	if err := u.mem.Delete(folder); err != nil {
		s.failf("imaptest: deleting folder %q: %v", folder, err)
	}
}
