package e2e

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// specialUse makes Dovecot announce \Junk, \Trash and \Sent (RFC 6154).
const specialUse = `
namespace inbox {
  inbox = yes
  separator = .
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Sent {
    special_use = \Sent
  }
}
`

type accountSink struct {
	mu  sync.Mutex
	got map[string][][]byte
}

func (s *accountSink) handler(ctx context.Context, f mailaccess.FolderInfo, m *mailaccess.Message) error {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string][][]byte{}
	}
	s.got[f.Name] = append(s.got[f.Name], b)
	return nil
}

func (s *accountSink) take() map[string][][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.got
	s.got = nil
	return g
}

func dovecotAccount(t *testing.T, d *dovecottest.Server) *imap.Account {
	t.Helper()
	a, err := imap.DialAccount(t.Context(), d.IMAPSAddr, &imap.Options{DialOptions: mailaccess.DialOptions{
		Auth: mailaccess.Auth{Username: user, Password: password}, TLSConfig: d.ClientTLSConfig(), Timeout: 30 * time.Second,
	}})
	if err != nil {
		t.Fatalf("DialAccount: %v\n%s", err, d.Log())
	}
	t.Cleanup(func() { a.Abort() })
	return a
}

// TestAccountOnDovecot: a whole account on a real Dovecot (delimiter ".",
// nested, special-use and non-ASCII folders): every message of every
// selected folder arrives byte for byte, \Junk and \Trash are left out;
// between two runs a folder is deleted, one renamed (with its child), one
// created, one gets a new UIDVALIDITY and INBOX a new message: the second
// run delivers exactly the two new messages, recognises the renamed and
// renumbered folders' content (the renamed ones' records move to their
// new names), and reports the deleted folder with its records kept.
func TestAccountOnDovecot(t *testing.T) {
	d := dovecottest.Start(t, &dovecottest.Options{ExtraConfig: specialUse})
	var corpus [][]byte
	for _, m := range loadCorpus(t) {
		if !bytes.ContainsRune(m.raw, 0) { // IMAP cannot carry NUL (RFC 3501 section 4.3)
			corpus = append(corpus, m.raw)
		}
	}
	ascii := []string{"INBOX", "Sent", "Junk", "Trash", "Archive", "Archive.2024", "Archive.2024.Q1", "Old"}
	want := map[string][][]byte{}
	for i, f := range ascii {
		var part [][]byte
		for j := i; j < len(corpus); j += len(ascii) {
			part = append(part, corpus[j])
		}
		d.Seed(t, user, f, part)
		if f != "Junk" && f != "Trash" {
			want[f] = part
		}
	}
	for i, f := range []string{"Entwürfe & Co", "日本語.メール"} {
		d.CreateFolder(t, user, f)
		for j := range 2 {
			raw := []byte("Subject: " + f + "\r\nMessage-ID: <" + strings.Repeat("n", i+1) + string(rune('a'+j)) + "@example.com>\r\n\r\nBody " + f + "\r\n")
			d.Save(t, user, f, raw)
			want[f] = append(want[f], raw)
		}
	}
	st, err := mailaccess.OpenFileState(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &mailaccess.Fetcher{State: st}
	var sink accountSink

	rep, err := f.FetchAccount(t.Context(), dovecotAccount(t, d), nil, sink.handler)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, d.Log())
	}
	got := sink.take()
	for folder, w := range want {
		if !slices.EqualFunc(got[folder], w, bytes.Equal) {
			t.Errorf("%q: %d messages delivered, want %d (byte for byte)", folder, len(got[folder]), len(w))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("delivered from %d folders, want %d: %v", len(got), len(want), keys(got))
	}
	for _, fr := range rep.Folders {
		if fr.Folder.Delimiter != '.' || fr.Err != nil {
			t.Fatalf("%q: %+v", fr.Folder.Name, fr)
		}
		if fr.Folder.Name == "Sent" && !fr.Folder.Has(`\Sent`) {
			t.Fatalf("Sent without \\Sent: %q", fr.Folder.Attributes)
		}
	}

	// Changes between the runs.
	d.DeleteFolder(t, user, "Old")
	d.RenameFolder(t, user, "Archive.2024", "Archive.Y2024")
	d.ResetUIDValidity(t, user, "Sent")
	newInbox := []byte("Subject: new in INBOX\r\n\r\nnew\r\n")
	d.Append(t, user, "INBOX", newInbox)
	d.CreateFolder(t, user, "Neu")
	fresh := []byte("Subject: new folder\r\n\r\nfresh\r\n")
	d.Append(t, user, "Neu", fresh)

	rep, err = f.FetchAccount(t.Context(), dovecotAccount(t, d), nil, sink.handler)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, d.Log())
	}
	got = sink.take()
	if len(got) != 2 || !slices.EqualFunc(got["INBOX"], [][]byte{newInbox}, bytes.Equal) || !slices.EqualFunc(got["Neu"], [][]byte{fresh}, bytes.Equal) {
		t.Fatalf("second run delivered %v, want one message in INBOX and one in Neu", keys(got))
	}
	name := func(folder string) string { return "imap://alice@127.0.0.1/" + url.PathEscape(folder) }
	// The renamed folders' records moved to their new names: only the
	// deleted folder is gone.
	if wantGone := []string{name("Old")}; !slices.Equal(rep.Gone, wantGone) {
		t.Fatalf("Gone = %q, want %q", rep.Gone, wantGone)
	}
	for _, fr := range rep.Folders {
		switch fr.Folder.Name {
		case "Archive.Y2024", "Archive.Y2024.Q1":
			old := strings.Replace(fr.Folder.Name, "Y2024", "2024", 1)
			if fr.RenamedFrom != name(old) || fr.Report.Recognized != len(want[old]) || fr.Report.Delivered != 0 {
				t.Errorf("renamed %q: RenamedFrom %q, %+v", fr.Folder.Name, fr.RenamedFrom, fr.Report)
			}
		case "Sent":
			if !fr.Report.UIDReset || fr.Report.Recognized != len(want["Sent"]) || fr.Report.Delivered != 0 {
				t.Errorf("Sent after a new UIDVALIDITY: %+v", fr.Report)
			}
		}
	}
	for _, g := range rep.Gone {
		if recs, _ := st.Records(t.Context(), g); len(recs) == 0 {
			t.Errorf("%s: records not kept", g)
		}
	}
	for _, old := range []string{"Archive.2024", "Archive.2024.Q1"} {
		if recs, _ := st.Records(t.Context(), name(old)); len(recs) != 0 {
			t.Errorf("%s: %d old records left after the rename", old, len(recs))
		}
	}

	// A third run delivers nothing.
	if _, err := f.FetchAccount(t.Context(), dovecotAccount(t, d), nil, sink.handler); err != nil {
		t.Fatal(err)
	}
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("third run delivered %v", keys(got))
	}
}

func keys(m map[string][][]byte) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+string(rune('0'+min(len(v), 9))))
	}
	slices.Sort(out)
	return out
}
