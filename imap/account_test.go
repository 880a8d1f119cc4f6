package imap_test

import (
	"bytes"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

func dialAccount(t *testing.T, s *imaptest.Server) *imap.Account {
	t.Helper()
	a, err := imap.DialAccount(t.Context(), s.Addr, options(s))
	if err != nil {
		t.Fatalf("DialAccount: %v", err)
	}
	t.Cleanup(func() { a.Abort() })
	return a
}

// account fills s with an account of nested, special-use and non-ASCII
// folders.
func account(s *imaptest.Server) {
	s.CreateFolder(user, "Sent", `\Sent`)
	s.CreateFolder(user, "Junk", `\Junk`)
	s.CreateFolder(user, "Trash", `\Trash`)
	s.CreateFolder(user, "Drafts", `\Drafts`)
	s.CreateFolder(user, "Archive")
	s.CreateFolder(user, "Archive/2024", `\Archive`)
	s.CreateFolder(user, "Entwürfe & Co")
	s.CreateFolder(user, "日本語/メール")
}

func folderNames(fs []driver.FolderInfo) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

func TestAccountFolders(t *testing.T) {
	s := newServer(t, nil)
	account(s)
	a := dialAccount(t, s)
	fs, err := a.Folders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Archive/2024", "Drafts", "Entwürfe & Co", "INBOX", "Junk", "Sent", "Trash", "日本語/メール"}
	if got := folderNames(fs); !slices.Equal(got, want) {
		t.Fatalf("Folders = %q, want %q", got, want)
	}
	attrs := map[string]string{"Sent": driver.AttrSent, "Junk": driver.AttrJunk, "Trash": driver.AttrTrash, "Drafts": driver.AttrDrafts, "Archive/2024": driver.AttrArchive}
	for _, f := range fs {
		if f.Delimiter != '/' {
			t.Errorf("%q: delimiter %q", f.Name, f.Delimiter)
		}
		if at, ok := attrs[f.Name]; ok && !f.Has(at) {
			t.Errorf("%q: attributes %q, want %s", f.Name, f.Attributes, at)
		}
		if f.Mailbox != a.Name()+url.PathEscape(f.Name) {
			t.Errorf("%q: Mailbox %q", f.Name, f.Mailbox)
		}
	}
	if a.Name() != "imap://alice@127.0.0.1/" {
		t.Fatalf("Name = %q", a.Name())
	}
	// The LIST asked for the special-use attributes.
	if !slices.ContainsFunc(s.Commands(), func(c imaptest.Command) bool {
		return c.Name == "LIST" && strings.Contains(c.Line, "RETURN (SPECIAL-USE)")
	}) {
		t.Fatalf("no LIST RETURN (SPECIAL-USE) in %v", s.Commands())
	}
}

// TestAccountOpenFolders opens folder after folder on one connection with
// one login: each Mailbox has its own Name, UIDVALIDITY and messages, byte
// for byte, and non-ASCII names go to the server in modified UTF-7.
func TestAccountOpenFolders(t *testing.T) {
	s := newServer(t, nil)
	account(s)
	msgs := map[string][][]byte{}
	for i, f := range []string{"INBOX", "Archive/2024", "Entwürfe & Co", "日本語/メール"} {
		for j := range 3 {
			raw := message(10*i+j, 200+50*j)
			s.Append(user, f, raw)
			msgs[f] = append(msgs[f], raw)
		}
	}
	a := dialAccount(t, s)
	epochs := map[string]bool{}
	for _, f := range []string{"INBOX", "Archive/2024", "Entwürfe & Co", "日本語/メール"} {
		mb, err := a.Open(t.Context(), f)
		if err != nil {
			t.Fatalf("Open(%q): %v", f, err)
		}
		m := mb.(*imap.Mailbox)
		if m.Name() != a.Name()+url.PathEscape(f) {
			t.Errorf("Name = %q for %q", m.Name(), f)
		}
		epochs[m.Describe().UIDEpoch] = true
		list, err := m.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(msgs[f]) {
			t.Fatalf("%q: %d messages, want %d", f, len(list), len(msgs[f]))
		}
		for i, info := range list {
			if got := readAll(t, m, info.UID); !bytes.Equal(got, msgs[f][i]) {
				t.Fatalf("%q message %d differs", f, i)
			}
		}
		// Deleting in one folder commits there, UID-scoped, and the
		// session goes on.
		if f == "Archive/2024" {
			if err := m.Delete(t.Context(), list[0].UID); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Close(t.Context()); err != nil {
			t.Fatalf("Close(%q): %v", f, err)
		}
	}
	if len(epochs) != 4 {
		t.Fatalf("UIDVALIDITYs %v: want one per folder", epochs)
	}
	if got := s.Messages(user, "Archive/2024"); len(got) != 2 || !bytes.Equal(got[0], msgs["Archive/2024"][1]) {
		t.Fatalf("Archive/2024 after deletion: %d messages", len(got))
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	var logins, selects int
	for _, c := range s.Commands() {
		if c.Conn != 1 {
			t.Fatalf("a second connection: %+v", c)
		}
		switch c.Name {
		case "LOGIN", "AUTHENTICATE":
			logins++
		case "SELECT":
			selects++
		case "EXPUNGE", "CLOSE":
			t.Fatalf("%s sent", c.Name)
		}
	}
	if logins != 1 || selects != 4 {
		t.Fatalf("%d logins and %d SELECTs, want 1 and 4: %v", logins, selects, names(s))
	}
	// Modified UTF-7 on the wire (RFC 3501 section 5.1.3).
	wire := map[string]bool{}
	for _, c := range s.Commands() {
		if c.Name == "SELECT" {
			wire[c.Line[strings.Index(c.Line, "SELECT")+7:]] = true
		}
	}
	for _, w := range []string{`"Entw&APw-rfe &- Co"`, `"&ZeVnLIqe-/&MOEw,DDr-"`} {
		if !wire[w] {
			t.Errorf("no SELECT %s in %v", w, wire)
		}
	}
}

func TestAccountOpenErrors(t *testing.T) {
	s := newServer(t, nil)
	s.CreateFolder(user, "Sent")
	s.Append(user, "Sent", message(1, 100))
	a := dialAccount(t, s)

	// A missing folder is ErrNotFound and the session goes on.
	if _, err := a.Open(t.Context(), "Nope"); !errors.Is(err, mailaccess.ErrNotFound) {
		t.Fatalf("Open(Nope) = %v, want ErrNotFound", err)
	}
	// CR or LF in a name is refused before anything is sent.
	before := len(s.Commands())
	for _, bad := range []string{"INBOX\r\nA1 DELETE INBOX", "a\nb", "x\x00"} {
		if _, err := a.Open(t.Context(), bad); !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Fatalf("Open(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	if after := len(s.Commands()); after != before {
		t.Fatalf("commands sent for bad names: %v", names(s)[before:])
	}
	// A NO to SELECT is the folder's error only.
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "SELECT" && strings.Contains(c.Line, "Sent") {
			return imaptest.Fault{No: "[UNAVAILABLE] try later"}
		}
		return imaptest.Fault{}
	})
	if _, err := a.Open(t.Context(), "Sent"); !errors.Is(err, mailaccess.ErrUnavailable) {
		t.Fatalf("Open(Sent) = %v, want ErrUnavailable", err)
	}
	s.SetFault(nil)
	mb, err := a.Open(t.Context(), "Sent")
	if err != nil {
		t.Fatal(err)
	}
	// One folder at a time.
	if _, err := a.Open(t.Context(), "INBOX"); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("second Open = %v, want ErrInvalidArgument", err)
	}
	if _, err := a.Folders(t.Context()); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("Folders with a folder open = %v, want ErrInvalidArgument", err)
	}
	list, err := mb.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	// Abort of a folder rolls its marks back and ends the account.
	if err := mb.Delete(t.Context(), list[0].UID); err != nil {
		t.Fatal(err)
	}
	mb.Abort()
	if _, err := a.Open(t.Context(), "INBOX"); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Open after Abort = %v, want ErrConnection", err)
	}
	if got := s.Messages(user, "Sent"); len(got) != 1 {
		t.Fatalf("Sent has %d messages after Abort", len(got))
	}
}

// TestAccountHostileList: names that decode to CR, LF or NUL (modified
// UTF-7 can encode them) are left out and the others listed; a raw CR or
// LF in a name (inside a literal, which modified UTF-7 does not allow)
// is a protocol violation that ends the session, never a name.
func TestAccountHostileList(t *testing.T) {
	s := newServer(t, nil)
	a := dialAccount(t, s)
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name != "LIST" {
			return imaptest.Fault{}
		}
		return imaptest.Fault{Reply: "* LIST () \"/\" \"INBOX&AA0ACg-A1 OK x\"\r\n" +
			"* LIST () \"/\" \"ab&AAA-cd\"\r\n" +
			"* LIST (\\HasNoChildren) \"/\" INBOX\r\n" +
			"* LIST (\\NoSelect) \"/\" Archive\r\n" +
			c.Tag + " OK done\r\n"}
	})
	fs, err := a.Folders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := folderNames(fs); !slices.Equal(got, []string{"Archive", "INBOX"}) {
		t.Fatalf("Folders = %q", got)
	}
	for _, f := range fs {
		if f.Name == "Archive" && (f.Selectable() || !f.Has(driver.AttrNoSelect)) {
			t.Fatalf("Archive: %q", f.Attributes)
		}
	}
	// The session is still usable.
	s.SetFault(nil)
	mb, err := a.Open(t.Context(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name != "LIST" {
			return imaptest.Fault{}
		}
		return imaptest.Fault{Reply: "* LIST () \"/\" {14}\r\nINBOX\r\nA1 OK x\r\n" + c.Tag + " OK done\r\n"}
	})
	before := len(s.Commands())
	if _, err := a.Folders(t.Context()); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Fatalf("Folders with a raw CRLF in a name = %v, want ErrProtocol", err)
	}
	if _, err := a.Open(t.Context(), "INBOX"); !errors.Is(err, mailaccess.ErrConnection) {
		t.Fatalf("Open after the violation = %v, want ErrConnection", err)
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := names(s)[before:]; !slices.Equal(got, []string{"LIST"}) {
		t.Fatalf("commands after the hostile LIST: %v", got)
	}
}
