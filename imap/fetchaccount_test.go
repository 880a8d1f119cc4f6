package imap_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
)

// sink keeps what a FetchAccount delivered, per folder, in order.
type sink struct {
	mu  sync.Mutex
	got map[string][][]byte
}

func (s *sink) handler() mailaccess.AccountHandler {
	return func(ctx context.Context, f mailaccess.FolderInfo, m *mailaccess.Message) error {
		var b bytes.Buffer
		if _, err := b.ReadFrom(m.Body); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.got == nil {
			s.got = map[string][][]byte{}
		}
		s.got[f.Name] = append(s.got[f.Name], b.Bytes())
		return nil
	}
}

func (s *sink) take() map[string][][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.got
	s.got = nil
	return g
}

func fetchAccount(t *testing.T, s *imaptest.Server, f *mailaccess.Fetcher, sel *mailaccess.Selection, h mailaccess.AccountHandler) (mailaccess.AccountReport, error) {
	t.Helper()
	a := dialAccount(t, s)
	return f.FetchAccount(t.Context(), a, sel, h)
}

func folderReport(t *testing.T, rep mailaccess.AccountReport, name string) mailaccess.FolderReport {
	t.Helper()
	for _, f := range rep.Folders {
		if f.Folder.Name == name {
			return f
		}
	}
	t.Fatalf("no report for %q in %+v", name, rep.Folders)
	return mailaccess.FolderReport{}
}

// TestFetchAccount: every selected folder is delivered byte for byte on
// one connection, \Junk and \Trash left out; a second run with nothing
// new sends one LIST and one SELECT per folder and no FETCH; between
// runs a folder is deleted, one renamed, one created and one gets a new
// UIDVALIDITY: nothing already delivered is delivered again, the new
// folder is, the deleted one is reported gone with its records kept, and
// the renamed one's records move to its new name.
func TestFetchAccount(t *testing.T) {
	s := newServer(t, nil)
	account(s)
	want := map[string][][]byte{}
	n := 0
	for _, f := range []string{"INBOX", "Sent", "Drafts", "Archive", "Archive/2024", "Entwürfe & Co", "日本語/メール", "Junk", "Trash"} {
		for range 3 {
			n++
			raw := message(n, 100+n*7)
			s.Append(user, f, raw)
			if f != "Junk" && f != "Trash" {
				want[f] = append(want[f], raw)
			}
		}
	}
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st}
	var got sink
	rep, err := fetchAccount(t, s, f, nil, got.handler())
	if err != nil {
		t.Fatalf("FetchAccount: %v", err)
	}
	if g := got.take(); !equalDeliveries(g, want) {
		t.Fatalf("delivered %v, want %v", summary(g), summary(want))
	}
	if len(rep.Folders) != len(want) || rep.Folders[0].Folder.Name != "INBOX" {
		t.Fatalf("reports: %+v", rep.Folders)
	}
	for _, fr := range rep.Folders {
		if fr.Err != nil || fr.Report.Delivered != 3 || fr.Report.Mailbox != fr.Folder.Mailbox {
			t.Fatalf("%q: %+v", fr.Folder.Name, fr)
		}
	}
	if tot := rep.Totals(); tot.Delivered != 3*len(want) {
		t.Fatalf("Totals = %+v", tot)
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	conns := map[int]bool{}
	for _, c := range s.Commands() {
		conns[c.Conn] = true
	}
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}

	// Nothing new: one LIST, one SELECT per folder, no FETCH.
	before := len(s.Commands())
	rep, err = fetchAccount(t, s, f, nil, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	if g := got.take(); len(g) != 0 {
		t.Fatalf("nothing new delivered %v", summary(g))
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range s.Commands()[before:] {
		counts[c.Name]++
	}
	if counts["LIST"] != 1 || counts["SELECT"] != len(want) || counts["UID FETCH"] != 0 || counts["FETCH"] != 0 || counts["LOGIN"]+counts["AUTHENTICATE"] != 1 {
		t.Fatalf("a run with nothing new sent %v", counts)
	}

	// Changes between runs.
	s.DeleteFolder(user, "Sent")
	s.RenameFolder(user, "Archive/2024", "Archive/Y2024")
	s.CreateFolder(user, "Neu")
	fresh := message(100, 300)
	s.Append(user, "Neu", fresh)
	s.ResetUIDValidity(user, "Drafts")
	newInbox := message(101, 250)
	s.Append(user, "INBOX", newInbox)

	rep, err = fetchAccount(t, s, f, nil, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	g := got.take()
	if !equalDeliveries(g, map[string][][]byte{"Neu": {fresh}, "INBOX": {newInbox}}) {
		t.Fatalf("after the changes delivered %v", summary(g))
	}
	name := func(folder string) string { return "imap://alice@127.0.0.1/" + url.PathEscape(folder) }
	// The renamed folder's messages were all found again: its old records
	// are dropped and it is not reported gone; the deleted one is.
	if !slices.Equal(rep.Gone, []string{name("Sent")}) {
		t.Fatalf("Gone = %q", rep.Gone)
	}
	if fr := folderReport(t, rep, "Archive/Y2024"); fr.RenamedFrom != name("Archive/2024") || fr.Report.Recognized != 3 || fr.Report.Delivered != 0 {
		t.Fatalf("renamed folder: %+v", fr)
	}
	if recs, _ := st.Records(t.Context(), name("Archive/2024")); len(recs) != 0 {
		t.Fatalf("the renamed folder's old records: %d left", len(recs))
	}
	if recs, _ := st.Records(t.Context(), name("Archive/Y2024")); len(recs) != 3 {
		t.Fatalf("the renamed folder has %d records, want 3", len(recs))
	}
	if fr := folderReport(t, rep, "Drafts"); !fr.Report.UIDReset || fr.Report.Recognized != 3 || fr.Report.Delivered != 0 {
		t.Fatalf("Drafts after a new UIDVALIDITY: %+v", fr.Report)
	}
	// The gone folders' records are kept.
	for _, gone := range rep.Gone {
		if recs, _ := st.Records(t.Context(), gone); len(recs) != 3 {
			t.Fatalf("%s: %d records kept, want 3", gone, len(recs))
		}
	}
	// And a later run delivers nothing again.
	if _, err := fetchAccount(t, s, f, nil, got.handler()); err != nil {
		t.Fatal(err)
	}
	if g := got.take(); len(g) != 0 {
		t.Fatalf("third run delivered %v", summary(g))
	}
}

// TestFetchAccountDeleteAndMove: DeleteAfterFetch empties every selected
// folder with UID EXPUNGE only; MoveTo a folder that the selection
// matches never fetches that folder (no loop).
func TestFetchAccountDeleteAndMove(t *testing.T) {
	s := newServer(t, nil)
	s.CreateFolder(user, "A")
	s.CreateFolder(user, "B/C")
	s.CreateFolder(user, "Done")
	for i, f := range []string{"INBOX", "A", "B/C"} {
		s.Append(user, f, message(i, 120))
	}
	s.Append(user, "Done", message(9, 120))
	var got sink
	rep, err := fetchAccount(t, s, &mailaccess.Fetcher{State: &mailaccess.MemoryState{}, Retention: mailaccess.DeleteAfterFetch},
		&mailaccess.Selection{Exclude: []string{"Done"}}, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"INBOX", "A", "B/C"} {
		if n := len(s.Messages(user, f)); n != 0 {
			t.Fatalf("%s holds %d messages after DeleteAfterFetch", f, n)
		}
		if fr := folderReport(t, rep, f); fr.Report.Deleted != 1 {
			t.Fatalf("%s: %+v", f, fr.Report)
		}
	}
	if hasPlainExpunge(s) {
		t.Fatal("a plain EXPUNGE was sent")
	}

	for i, f := range []string{"INBOX", "A"} {
		s.Append(user, f, message(20+i, 120))
	}
	rep, err = fetchAccount(t, s, &mailaccess.Fetcher{State: &mailaccess.MemoryState{}, Retention: mailaccess.MoveTo("Done")}, nil, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range rep.Folders {
		if fr.Folder.Name == "Done" {
			t.Fatal("the MoveTo folder was fetched")
		}
	}
	if n := len(s.Messages(user, "Done")); n != 3 {
		t.Fatalf("Done holds %d messages, want 3", n)
	}
	if g := got.take(); len(g["Done"]) != 0 || len(g["INBOX"]) != 2 || len(g["A"]) != 2 {
		t.Fatalf("delivered %v", summary(g))
	}
}

// TestFetchAccountFolderError: a folder that the server refuses is that
// folder's error; the others are fetched; a selection that matches
// nothing, and a bad pattern, fail before anything is fetched.
func TestFetchAccountFolderError(t *testing.T) {
	s := newServer(t, nil)
	account(s)
	for _, f := range []string{"INBOX", "Sent", "Drafts"} {
		s.Append(user, f, message(len(f), 100))
	}
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "SELECT" && strings.Contains(c.Line, "Sent") {
			return imaptest.Fault{No: "[SERVERBUG] broken index"}
		}
		return imaptest.Fault{}
	})
	var got sink
	rep, err := fetchAccount(t, s, &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}, &mailaccess.Selection{Include: []string{"%"}}, got.handler())
	if !errors.Is(err, mailaccess.ErrServer) || !strings.Contains(err.Error(), `folder "Sent"`) {
		t.Fatalf("FetchAccount = %v, want the Sent folder's ErrServer", err)
	}
	if fr := folderReport(t, rep, "Sent"); !errors.Is(fr.Err, mailaccess.ErrServer) {
		t.Fatalf("Sent: %+v", fr)
	}
	g := got.take()
	if len(g["INBOX"]) != 1 || len(g["Drafts"]) != 1 || len(g["Sent"]) != 0 {
		t.Fatalf("delivered %v", summary(g))
	}
	s.SetFault(nil)

	_, err = fetchAccount(t, s, &mailaccess.Fetcher{}, &mailaccess.Selection{Include: []string{"Nope/*"}}, got.handler())
	if !errors.Is(err, mailaccess.ErrNotFound) || !strings.Contains(err.Error(), "no folder") {
		t.Fatalf("no match = %v, want ErrNotFound", err)
	}
	before := len(s.Commands())
	a := dialAccount(t, s)
	_, err = (&mailaccess.Fetcher{}).FetchAccount(t.Context(), a, &mailaccess.Selection{Include: []string{"a\r\nb"}}, got.handler())
	if !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("bad pattern = %v, want ErrInvalidArgument", err)
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Commands()[before:] {
		if c.Name == "LIST" || c.Name == "SELECT" {
			t.Fatalf("%s sent for a bad pattern", c.Name)
		}
	}
}

// TestFetchAccountEndsSession: FetchAccount ends the account's session
// with LOGOUT when it returns.
func TestFetchAccountEndsSession(t *testing.T) {
	s := newServer(t, nil)
	a, err := imap.DialAccount(t.Context(), s.Addr, options(s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&mailaccess.Fetcher{}).FetchAccount(t.Context(), a, nil, (&sink{}).handler()); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := names(s); n[len(n)-1] != "LOGOUT" {
		t.Fatalf("last command %q, want LOGOUT", n[len(n)-1])
	}
}

func equalDeliveries(got, want map[string][][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for f, w := range want {
		if !slices.EqualFunc(got[f], w, bytes.Equal) {
			return false
		}
	}
	return true
}

func summary(m map[string][][]byte) map[string]int {
	out := map[string]int{}
	for f, l := range m {
		out[f] = len(l)
	}
	return out
}

// TestFetchAccountConnectionLost: when the connection drops in the middle
// of the account, the folders before it are done, that folder and those
// after it report the lost session, and the next run delivers exactly the
// rest: nothing lost, nothing twice.
func TestFetchAccountConnectionLost(t *testing.T) {
	s := newServer(t, nil)
	want := map[string][][]byte{}
	for i, f := range []string{"INBOX", "A", "B", "C"} {
		for j := range 2 {
			raw := message(10*i+j, 150)
			s.Append(user, f, raw)
			want[f] = append(want[f], raw)
		}
	}
	var dropped atomic.Bool
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" && strings.Contains(c.Line, "BODY.PEEK") && !dropped.Load() {
			// The first body fetch of folder B.
			for _, prev := range s.Commands() {
				if prev.Conn == c.Conn && prev.Name == "SELECT" && (strings.HasSuffix(prev.Line, ` "B"`) || strings.HasSuffix(prev.Line, " B")) {
					dropped.Store(true)
					return imaptest.Fault{DropAfterBytes: 40}
				}
			}
		}
		return imaptest.Fault{}
	})
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st, Retention: mailaccess.DeleteAfterFetch}
	var got sink
	rep, err := fetchAccount(t, s, f, nil, got.handler())
	if !errors.Is(err, mailaccess.ErrConnection) || !dropped.Load() {
		t.Fatalf("FetchAccount = %v (dropped %v), want ErrConnection", err, dropped.Load())
	}
	for _, fr := range rep.Folders {
		lost := fr.Folder.Name == "B" || fr.Folder.Name == "C"
		if lost != (fr.Err != nil) || (lost && !errors.Is(fr.Err, mailaccess.ErrConnection)) {
			t.Fatalf("%q: %v", fr.Folder.Name, fr.Err)
		}
	}
	first := got.take()
	if !equalDeliveries(first, map[string][][]byte{"INBOX": want["INBOX"], "A": want["A"]}) {
		t.Fatalf("first run delivered %v", summary(first))
	}
	s.SetFault(nil)
	if _, err := fetchAccount(t, s, f, nil, got.handler()); err != nil {
		t.Fatal(err)
	}
	if second := got.take(); !equalDeliveries(second, map[string][][]byte{"B": want["B"], "C": want["C"]}) {
		t.Fatalf("second run delivered %v", summary(second))
	}
	for _, folder := range []string{"INBOX", "A", "B", "C"} {
		if n := len(s.Messages(user, folder)); n != 0 {
			t.Fatalf("%s holds %d after DeleteAfterFetch", folder, n)
		}
	}
}
