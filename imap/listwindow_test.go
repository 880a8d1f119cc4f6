package imap_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/unimail/unimail/mailaccess"
)

// The windows of ListWindow, followed from any starting point, list what
// ListAfter lists from there, through gaps in the UIDs, and end with a
// next of "".
func TestListWindowCoversListAfter(t *testing.T) {
	s := newServer(t, nil)
	for i := range 23 {
		s.Append(user, "INBOX", message(i, 200))
	}
	mb := dial(t, s, nil)
	all, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A gap of 7 UIDs.
	if err := mb.Delete(t.Context(), uids(all[8:15])...); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mb = dial(t, s, nil)
	defer mb.Close(t.Context())
	epoch := mb.Describe().UIDEpoch
	for _, after := range []mailaccess.UID{"", all[0].UID, all[7].UID, all[10].UID, all[21].UID, all[22].UID, "1/3"} {
		want, err := mb.ListAfter(t.Context(), after)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 3, 8, 100} {
			var got []mailaccess.MessageInfo
			cur, windows := after, 0
			for {
				list, next, err := mb.ListWindow(t.Context(), cur, n)
				if err != nil {
					t.Fatalf("after %q, n %d: %v", after, n, err)
				}
				got = append(got, list...)
				windows++
				if next == "" {
					break
				}
				if len(list) > n || windows > 30 {
					t.Fatalf("after %q, n %d: a window of %d messages, %d windows", after, n, len(list), windows)
				}
				cur = next
			}
			if !slices.Equal(uids(got), uids(want)) {
				t.Fatalf("after %q (epoch %s), n %d: windows listed %v, ListAfter %v", after, epoch, n, uids(got), uids(want))
			}
		}
	}
	if _, _, err := mb.ListWindow(t.Context(), "not a uid", 5); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("a malformed after: %v", err)
	}
}
