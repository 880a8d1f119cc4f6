package imap_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/unimail/unimail/mailaccess"
)

// TestFetchAccountRenamePartly: a folder renamed and then emptied of one
// message keeps its old records (one message was not found again) and
// stays reported gone; what was found is not delivered again; a message
// new in the renamed folder is delivered, although its UIDVALIDITY and
// UIDs could have been taken for the gone folder's: content decides.
func TestFetchAccountRenamePartly(t *testing.T) {
	s := newServer(t, nil)
	for i := range 3 {
		s.Append(user, "Old", message(i, 200))
	}
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{State: st}
	var got sink
	if _, err := fetchAccount(t, s, f, nil, got.handler()); err != nil {
		t.Fatal(err)
	}
	got.take()

	s.RenameFolder(user, "Old", "New")
	msgs := s.Messages(user, "New")
	s.SetMessages(user, "New", [][]byte{msgs[0], msgs[2], message(9, 200)}) // new UIDs, same UIDVALIDITY
	rep, err := fetchAccount(t, s, f, nil, got.handler())
	if err != nil {
		t.Fatal(err)
	}
	old := "imap://alice@127.0.0.1/" + url.PathEscape("Old")
	fr := folderReport(t, rep, "New")
	if fr.RenamedFrom != old || fr.Report.Recognized != 2 || fr.Report.Delivered != 1 {
		t.Fatalf("New: RenamedFrom %q, %+v", fr.RenamedFrom, fr.Report)
	}
	if g := got.take(); len(g["New"]) != 1 || string(g["New"][0]) != string(message(9, 200)) {
		t.Fatalf("delivered %v", summary(g))
	}
	if !slices.Equal(rep.Gone, []string{old}) {
		t.Fatalf("Gone = %q, want the old folder (one message not found again)", rep.Gone)
	}
	if recs, _ := st.Records(t.Context(), old); len(recs) != 3 {
		t.Fatalf("old records: %d, want 3 kept", len(recs))
	}
}
