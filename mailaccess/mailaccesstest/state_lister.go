package mailaccesstest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/unimail/unimail/mailaccess"
)

// testStateMailboxLister checks mailaccess.MailboxLister: the mailboxes
// with records under a prefix, sorted, byte for byte; a mailbox whose
// records were all forgotten is not listed; a prefix is a plain string
// (SQL wildcards and letter case included).
func testStateMailboxLister(t *testing.T, s mailaccess.State) {
	ml, ok := s.(mailaccess.MailboxLister)
	if !ok {
		t.Skipf("%T is not a mailaccess.MailboxLister", s)
	}
	ctx := context.Background()
	list := func(prefix string) []string {
		t.Helper()
		got, err := ml.Mailboxes(ctx, prefix)
		if err != nil {
			t.Fatalf("Mailboxes(%q): %v", prefix, err)
		}
		return got
	}
	if got := list(""); len(got) != 0 {
		t.Fatalf("Mailboxes of an empty State = %q, want none", got)
	}
	mbs := oddMailboxes()
	for i, mb := range mbs {
		put(t, s, mb, stateRecord("1/1", i))
	}
	// One mailbox whose only record is forgotten is not listed.
	gone := "imap://alice@mail.example.com/Gone"
	put(t, s, gone, stateRecord("1/1", 99))
	forget(t, s, gone, "1/1")

	want := slices.Clone(mbs)
	slices.Sort(want)
	if got := list(""); !slices.Equal(got, want) {
		t.Fatalf("Mailboxes(\"\") = %q, want %q", got, want)
	}
	for _, prefix := range []string{
		"imap://alice@mail.example.com/",
		"imap://alice@mail.example.com/INBOX",
		"imap://x@example.com/",
		"imap://x@example.com/%", // a SQL wildcard is a plain character
		"imap://X@example.com/",  // letter case counts
		"imap://jürgen@exämple.de/",
		"nothing",
	} {
		var want []string
		for _, mb := range mbs {
			if strings.HasPrefix(mb, prefix) {
				want = append(want, mb)
			}
		}
		slices.Sort(want)
		if got := list(prefix); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("Mailboxes(%q) = %q, want %q", prefix, got, want)
		}
	}
	// ForgetMailbox drops the records and the mark.
	if is, ok := s.(mailaccess.IncrementalState); ok {
		setMark(t, is, mbs[0], "1/1")
	}
	if err := mailaccess.ForgetMailbox(ctx, s, mbs[0]); err != nil {
		t.Fatalf("ForgetMailbox: %v", err)
	}
	if got := records(t, s, mbs[0]); len(got) != 0 {
		t.Fatalf("records after ForgetMailbox: %d", len(got))
	}
	if is, ok := s.(mailaccess.IncrementalState); ok {
		if m := mark(t, is, mbs[0]); m != "" {
			t.Fatalf("mark after ForgetMailbox = %q", m)
		}
	}
	if got := list(""); slices.Contains(got, mbs[0]) || len(got) != len(mbs)-1 {
		t.Fatalf("Mailboxes after ForgetMailbox = %q", got)
	}
}
