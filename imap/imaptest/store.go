package imaptest

import (
	"bytes"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/imap/imaptest/internal/memserver"
)

// AddUser creates user with password and an empty INBOX, or changes the
// password of an existing user. A user needs no password to log in with an
// OAuth token (see Config.Tokens).
func (s *Server) AddUser(name, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[name]; u != nil {
		u.password = password
		return
	}
	u := &user{name: name, password: password, mem: memserver.NewUser(name, "")}
	if err := u.mem.Create("INBOX", nil); err != nil {
		panic("imaptest: creating INBOX: " + err.Error()) // a new user has no folder
	}
	s.users[name] = u
}

// lookupUser returns the user called name, or nil.
func (s *Server) lookupUser(name string) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name]
}

// mustUser returns the user called name or fails.
func (s *Server) mustUser(name string) *user {
	if u := s.lookupUser(name); u != nil {
		return u
	}
	if s.t != nil {
		s.t.Helper()
	}
	s.failf("imaptest: no user %q (call AddUser first)", name)
	return nil
}

// CreateFolder creates folder for user if it does not exist yet, with the
// given special-use attributes (RFC 6154, such as `\Archive` or `\Trash`)
// when it is new. Sub-folders are separated by "/".
func (s *Server) CreateFolder(name, folder string, specialUse ...string) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	s.ensureFolder(u, folder, specialUse)
}

func (s *Server) ensureFolder(u *user, folder string, specialUse []string) {
	if s.t != nil {
		s.t.Helper()
	}
	var opts imap.CreateOptions
	for _, a := range specialUse {
		opts.SpecialUse = append(opts.SpecialUse, imap.MailboxAttr(a))
	}
	err := u.mem.Create(folder, &opts)
	var imapErr *imap.Error
	if err != nil && !(errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeAlreadyExists) {
		s.failf("imaptest: creating folder %q: %v", folder, err)
	}
}

// Append adds a copy of raw to folder of user, with no flags and the
// current time as its INTERNALDATE, and returns its UID. It creates the
// folder if it does not exist. Clients that have the folder selected see
// the new message (IDLE sees EXISTS at once; others at their next
// command). raw is stored and sent back byte for byte: use CRLF line ends
// as a real server does.
func (s *Server) Append(name, folder string, raw []byte) (uid uint32) {
	if s.t != nil {
		s.t.Helper()
	}
	return s.AppendMessage(name, folder, raw, nil, time.Time{})
}

// AppendMessage is Append with the message's flags (such as `\Seen`) and
// INTERNALDATE (the current time when zero).
func (s *Server) AppendMessage(name, folder string, raw []byte, flags []string, date time.Time) (uid uint32) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	s.ensureFolder(u, folder, nil)
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	data, err := u.mem.Append(folder, bytes.NewReader(raw), opts)
	if err != nil {
		s.failf("imaptest: appending to %q: %v", folder, err)
	}
	return uint32(data.UID)
}

// SetMessages replaces the contents of folder of user with copies of raws,
// in that order; the folder keeps its UIDVALIDITY and the new messages get
// new UIDs. It creates the folder if it does not exist. Clients that have
// the folder selected see the old messages expunged and the new ones
// arrive.
func (s *Server) SetMessages(name, folder string, raws [][]byte) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	s.ensureFolder(u, folder, nil)
	s.mailbox(u, folder).ExpungeAll()
	for _, raw := range raws {
		if _, err := u.mem.Append(folder, bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
			s.failf("imaptest: appending to %q: %v", folder, err)
		}
	}
}

// Messages returns copies of the raw bytes of the messages now in folder
// of user (expunged ones are gone), in UID order.
func (s *Server) Messages(name, folder string) [][]byte {
	if s.t != nil {
		s.t.Helper()
	}
	var out [][]byte
	for _, m := range s.mailbox(s.mustUser(name), folder).Snapshot() {
		out = append(out, bytes.Clone(m.Raw))
	}
	return out
}

// UIDs returns the UIDs of the messages now in folder of user, in order.
func (s *Server) UIDs(name, folder string) []uint32 {
	if s.t != nil {
		s.t.Helper()
	}
	var out []uint32
	for _, m := range s.mailbox(s.mustUser(name), folder).Snapshot() {
		out = append(out, uint32(m.UID))
	}
	return out
}

// Flags returns the flags of each message now in folder of user, in UID
// order, each list sorted and never nil. System flags are spelt as in RFC
// 9051 (`\Seen`, `\Deleted`, ...); keywords are lower-cased.
func (s *Server) Flags(name, folder string) [][]string {
	if s.t != nil {
		s.t.Helper()
	}
	var out [][]string
	for _, m := range s.mailbox(s.mustUser(name), folder).Snapshot() {
		flags := make([]string, 0, len(m.Flags))
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		out = append(out, flags)
	}
	return out
}

// UIDValidity returns the UIDVALIDITY of folder of user.
func (s *Server) UIDValidity(name, folder string) uint32 {
	if s.t != nil {
		s.t.Helper()
	}
	return s.mailbox(s.mustUser(name), folder).UIDValidity()
}

// ResetUIDValidity deletes folder of user and creates it again with the
// same messages (bytes, flags and INTERNALDATE, in the same order), the
// same special-use attributes and subscription, and a new UIDVALIDITY:
// what a server does when it rebuilds its index. Clients that have the
// folder selected keep seeing the old, detached folder until they select
// it again; CloseClientConnections makes them reconnect.
func (s *Server) ResetUIDValidity(name, folder string) {
	if s.t != nil {
		s.t.Helper()
	}
	u := s.mustUser(name)
	old := s.mailbox(u, folder)
	msgs := old.Snapshot()
	if err := u.mem.Delete(folder); err != nil {
		s.failf("imaptest: deleting folder %q: %v", folder, err)
	}
	if err := u.mem.Create(folder, &imap.CreateOptions{SpecialUse: old.SpecialUse()}); err != nil {
		s.failf("imaptest: creating folder %q: %v", folder, err)
	}
	mbox := s.mailbox(u, folder)
	mbox.SetSubscribed(old.Subscribed())
	for _, m := range msgs {
		if _, err := u.mem.Append(folder, bytes.NewReader(m.Raw), &imap.AppendOptions{Flags: m.Flags, Time: m.Time}); err != nil {
			s.failf("imaptest: appending to %q: %v", folder, err)
		}
	}
}

// mailbox returns folder of u or fails.
func (s *Server) mailbox(u *user, folder string) *memserver.Mailbox {
	if s.t != nil {
		s.t.Helper()
	}
	mbox, err := u.mem.Mailbox(folder)
	if err != nil {
		s.failf("imaptest: no folder %q for user %q", folder, u.name)
	}
	return mbox
}
