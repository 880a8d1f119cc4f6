package mailaccesstest

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

func testStateRoundTrip(t *testing.T, s mailaccess.State) {
	const mb = "imap://alice@mail.example.com/INBOX"
	if recs := records(t, s, mb); len(recs) != 0 {
		t.Fatalf("a new State holds %d records", len(recs))
	}
	want := fullRecords()
	put(t, s, mb, want[0])
	put(t, s, mb, want[1:]...)
	got := records(t, s, mb)
	sameRecords(t, "Records after Put", got, want)
	for _, r := range got {
		if r.UID == want[0].UID && r.Delivered.Nanosecond() != 123456789 {
			t.Fatalf("Delivered lost its nanoseconds: %s", r.Delivered.Format(time.RFC3339Nano))
		}
	}
	if is, ok := s.(mailaccess.IncrementalState); ok {
		uids := make([]mailaccess.UID, len(want))
		for i, r := range want {
			uids[i] = r.UID
		}
		sameRecords(t, "Lookup after Put", lookup(t, is, mb, uids...), want)
	}
	if recs := records(t, s, "imap://alice@mail.example.com/Other"); len(recs) != 0 {
		t.Fatalf("another mailbox holds %d records", len(recs))
	}
}

func testStatePutReplaces(t *testing.T, s mailaccess.State) {
	const mb = "pop3://bob@pop.example.com"
	v1 := []mailaccess.Record{stateRecord("a", 1), stateRecord("b", 1), stateRecord("c", 1)}
	put(t, s, mb, v1...)
	v2 := stateRecord("b", 2)
	v2.CopiedTo = "Archive"
	put(t, s, mb, v2)
	sameRecords(t, "after replacing b", records(t, s, mb), []mailaccess.Record{v1[0], v2, v1[2]})
	// CopiedTo can be cleared again.
	v3 := stateRecord("b", 3)
	put(t, s, mb, v3)
	sameRecords(t, "after replacing b again", records(t, s, mb), []mailaccess.Record{v1[0], v3, v1[2]})
	// Within one batch, the last record of a UID wins.
	put(t, s, mb, stateRecord("c", 4), stateRecord("d", 4), stateRecord("c", 5), stateRecord("d", 6))
	want := []mailaccess.Record{v1[0], v3, stateRecord("c", 5), stateRecord("d", 6)}
	sameRecords(t, "after a batch with repeated UIDs", records(t, s, mb), want)
	if is, ok := s.(mailaccess.IncrementalState); ok {
		sameRecords(t, "Lookup after replacements", lookup(t, is, mb, "a", "b", "c", "d"), want)
		wantCount(t, is, mb, "1700000003", 4, 1)
	}
}

func testStateBatch(t *testing.T, s mailaccess.State) {
	const mb = "imap://carol@example.org/INBOX"
	var want []mailaccess.Record
	for i := range 1000 {
		want = append(want, stateRecord(fmt.Sprintf("1700000000/%d", i+1), i%3))
	}
	put(t, s, mb, want...)
	sameRecords(t, "Records after a batch of 1000", records(t, s, mb), want)
	put(t, s, mb) // an empty Put changes nothing
	if err := s.Put(ctxT(t), "never used"); err != nil {
		t.Fatalf("empty Put to a new mailbox: %v", err)
	}
	sameRecords(t, "Records after an empty Put", records(t, s, mb), want)
	if n := len(records(t, s, "never used")); n != 0 {
		t.Fatalf("an empty Put created %d records", n)
	}
	if is, ok := s.(mailaccess.IncrementalState); ok {
		wantCount(t, is, mb, "1700000000", 1000, 334)
	}
}

func testStateForget(t *testing.T, s mailaccess.State) {
	const mb = "imap://dave@example.net/INBOX"
	var all []mailaccess.Record
	for _, u := range []string{"1/1", "1/2", "1/3", "1/4", "1/5"} {
		all = append(all, stateRecord(u, 1))
	}
	put(t, s, mb, all...)
	forget(t, s, mb, "1/2", "unknown", "1/4", "1/2")
	sameRecords(t, "after Forget", records(t, s, mb), []mailaccess.Record{all[0], all[2], all[4]})
	forget(t, s, mb)                                       // no UIDs
	forget(t, s, "imap://nobody@example.net/INBOX", "1/1") // unknown mailbox
	sameRecords(t, "after Forget of nothing", records(t, s, mb), []mailaccess.Record{all[0], all[2], all[4]})
	// A forgotten UID can be put again.
	again := stateRecord("1/2", 9)
	put(t, s, mb, again)
	sameRecords(t, "after putting a forgotten UID", records(t, s, mb), []mailaccess.Record{all[0], again, all[2], all[4]})
	forget(t, s, mb, "1/1", "1/2", "1/3", "1/5")
	if recs := records(t, s, mb); len(recs) != 0 {
		t.Fatalf("after forgetting every UID: %d records", len(recs))
	}
	if is, ok := s.(mailaccess.IncrementalState); ok {
		wantCount(t, is, mb, "1700000001", 0, 0)
		if recs := lookup(t, is, mb, "1/1", "1/2"); len(recs) != 0 {
			t.Fatalf("Lookup after Forget: %d records", len(recs))
		}
	}
}

// oddMailboxes are mailbox names that a State must keep apart.
func oddMailboxes() []string {
	return []string{
		"imap://alice@mail.example.com/INBOX",
		"imap://alice@mail.example.com/INBOX/Sub", // a prefix of it above
		"imap://alice@mail.example.com/inbox",     // differs only in case
		"imap://alice@mail.example.com/INBOX ",    // a trailing space
		"pop3://alice@mail.example.com",
		"imap://a b@host.example/Sent Items",
		"imap://jürgen@exämple.de/Entwürfe/日本語",
		`imap://o'brien@example.com/"quoted" 100%_done\back`,
		"imap://x@example.com/%",
		"imap://x@example.com/_",
		"imap://" + strings.Repeat("long.", 60) + "example.com/" + strings.Repeat("Ordner-ü/", 30),
	}
}

func testStateMailboxes(t *testing.T, s mailaccess.State) {
	mbs := oddMailboxes()
	is, incremental := s.(mailaccess.IncrementalState)
	// The same UIDs in every mailbox, with different contents.
	want := make(map[string][]mailaccess.Record)
	for i, mb := range mbs {
		for _, u := range []string{"1/1", "1/2", "1/3"} {
			want[mb] = append(want[mb], stateRecord(u, i))
		}
		put(t, s, mb, want[mb]...)
		if incremental {
			setMark(t, is, mb, mailaccess.UID(fmt.Sprintf("1/%d", i)))
		}
	}
	// Forgetting in one mailbox leaves the others alone.
	forget(t, s, mbs[0], "1/2")
	want[mbs[0]] = []mailaccess.Record{want[mbs[0]][0], want[mbs[0]][2]}
	put(t, s, mbs[1], stateRecord("1/4", 1))
	want[mbs[1]] = append(want[mbs[1]], stateRecord("1/4", 1))
	for i, mb := range mbs {
		sameRecords(t, fmt.Sprintf("Records(%q)", mb), records(t, s, mb), want[mb])
		if !incremental {
			continue
		}
		if m := mark(t, is, mb); m != mailaccess.UID(fmt.Sprintf("1/%d", i)) {
			t.Fatalf("Mark(%q) = %q, want %q", mb, m, fmt.Sprintf("1/%d", i))
		}
		wantCount(t, is, mb, fmt.Sprint(1700000000+i), len(want[mb]), len(want[mb]))
		sameRecords(t, fmt.Sprintf("Lookup(%q)", mb), lookup(t, is, mb, "1/1", "1/2", "1/3", "1/4"), want[mb])
	}
}

func testStateOddUIDs(t *testing.T, s mailaccess.State) {
	const mb = "pop3://erin@pop.example.com"
	uids := []string{
		"1700000000/42",
		"sha256:" + hex.EncodeToString(make([]byte, 32)),
		"sha256:" + strings.Repeat("f", 64),
		printableASCII(),
		"AbC", "abc", "ABC", // differ only in case
		"%", "_", "a%", "a_c", "a%c", `\`, `'`, `"`, "''", "*", "?", "$1", "--", "/*",
		"#1", "#10",
		"x", "x ", // (a space may not be in a POP3 UIDL, but in a State's UID it must be kept)
		strings.Repeat("9", 512),
	}
	for c := byte(0x21); c <= 0x7e; c++ {
		uids = append(uids, string(c)) // repeated ones are skipped below
	}
	seen := map[string]bool{}
	var want []mailaccess.Record
	for i, u := range uids {
		if seen[u] {
			continue
		}
		seen[u] = true
		want = append(want, stateRecord(u, i))
	}
	put(t, s, mb, want...)
	sameRecords(t, "Records of odd UIDs", records(t, s, mb), want)
	is, incremental := s.(mailaccess.IncrementalState)
	if incremental {
		for _, r := range want {
			sameRecords(t, fmt.Sprintf("Lookup(%q)", r.UID), lookup(t, is, mb, r.UID), []mailaccess.Record{r})
			setMark(t, is, mb, r.UID)
			if m := mark(t, is, mb); m != r.UID {
				t.Fatalf("Mark after SetMark(%q) = %q", r.UID, m)
			}
		}
	}
	// Forgetting "%", "_" and "abc" forgets those exactly (no pattern
	// matching, no case folding).
	forget(t, s, mb, "%", "_", "abc", "*")
	var left []mailaccess.Record
	for _, r := range want {
		switch r.UID {
		case "%", "_", "abc", "*":
		default:
			left = append(left, r)
		}
	}
	sameRecords(t, "Records after forgetting %, _, abc and *", records(t, s, mb), left)
	if incremental {
		sameRecords(t, "Lookup of AbC, abc, ABC, a%c", lookup(t, is, mb, "AbC", "abc", "ABC", "a%c", "a_c"),
			[]mailaccess.Record{stateRecord("AbC", 4), stateRecord("ABC", 6), stateRecord("a%c", 11), stateRecord("a_c", 10)})
	}
}

func testStateMark(t *testing.T, s mailaccess.IncrementalState) {
	const mb, other = "imap://frank@example.com/INBOX", "imap://frank@example.com/Archive"
	if m := mark(t, s, mb); m != "" {
		t.Fatalf("mark of a new mailbox: %q", m)
	}
	setMark(t, s, mb, "1700000000/7")
	if m := mark(t, s, mb); m != "1700000000/7" {
		t.Fatalf("mark after SetMark: %q", m)
	}
	setMark(t, s, mb, "1700000000/9")
	setMark(t, s, other, "1/1")
	if m := mark(t, s, mb); m != "1700000000/9" {
		t.Fatalf("mark after a second SetMark: %q", m)
	}
	if m := mark(t, s, other); m != "1/1" {
		t.Fatalf("mark of another mailbox: %q", m)
	}
	// A mark is not a record.
	if recs := records(t, s, mb); len(recs) != 0 {
		t.Fatalf("SetMark created %d records", len(recs))
	}
	wantCount(t, s, mb, "1700000000", 0, 0)
	// Records come and go; the mark stays as set.
	put(t, s, mb, stateRecord("1700000000/9", 0))
	forget(t, s, mb, "1700000000/9")
	if m := mark(t, s, mb); m != "1700000000/9" {
		t.Fatalf("mark after Put and Forget: %q", m)
	}
}

func testStateCount(t *testing.T, s mailaccess.IncrementalState) {
	const mb = "imap://grace@example.com/INBOX"
	wantCount(t, s, mb, "", 0, 0)
	var recs []mailaccess.Record
	for i := range 10 {
		r := stateRecord(fmt.Sprintf("u%d", i), 0)
		switch {
		case i < 5:
			r.Epoch = "100"
		case i < 8:
			r.Epoch = "200"
		default:
			r.Epoch = "" // POP3: no epoch
		}
		recs = append(recs, r)
	}
	put(t, s, mb, recs...)
	put(t, s, "imap://grace@example.com/Other", stateRecord("u1", 0), stateRecord("u2", 0))
	wantCount(t, s, mb, "100", 10, 5)
	wantCount(t, s, mb, "200", 10, 3)
	wantCount(t, s, mb, "", 10, 2)
	wantCount(t, s, mb, "300", 10, 0)
	wantCount(t, s, mb, "10", 10, 0) // a prefix of an epoch is another epoch
	// Replacing a record moves it to its new epoch.
	moved := recs[0]
	moved.Epoch = "200"
	put(t, s, mb, moved)
	wantCount(t, s, mb, "100", 10, 4)
	wantCount(t, s, mb, "200", 10, 4)
	forget(t, s, mb, "u5", "u9", "nope")
	wantCount(t, s, mb, "200", 8, 3)
	wantCount(t, s, mb, "", 8, 1)
	wantCount(t, s, "imap://grace@example.com/Other", "1700000000", 2, 2)
	wantCount(t, s, "imap://grace@example.com/None", "100", 0, 0)
}

func testStateLookup(t *testing.T, s mailaccess.IncrementalState) {
	const mb = "imap://heidi@example.com/INBOX"
	var all []mailaccess.Record
	var uids []mailaccess.UID
	for i := range 500 {
		r := stateRecord(fmt.Sprintf("1700000000/%d", i+1), i%2)
		all = append(all, r)
		uids = append(uids, r.UID)
	}
	put(t, s, mb, all...)
	put(t, s, "imap://heidi@example.com/Other", stateRecord("1700000000/1000", 0))
	if recs := lookup(t, s, mb); len(recs) != 0 {
		t.Fatalf("Lookup of no UIDs: %d records", len(recs))
	}
	if recs := lookup(t, s, mb, "1700000000/1000", "1700000000/0", "1700000000/", "1700000000/1 "); len(recs) != 0 {
		t.Fatalf("Lookup of unknown UIDs: %v", recs)
	}
	if recs := lookup(t, s, "imap://heidi@example.com/None", uids[:3]...); len(recs) != 0 {
		t.Fatalf("Lookup in an unknown mailbox: %d records", len(recs))
	}
	// A subset with unknown UIDs among it, as a run after the mark asks.
	sub := []mailaccess.UID{uids[499], "1700000000/501", uids[0], "1700000000/9999", uids[250]}
	sameRecords(t, "Lookup of a subset", lookup(t, s, mb, sub...), []mailaccess.Record{all[499], all[0], all[250]})
	sameRecords(t, "Lookup of every UID", lookup(t, s, mb, append(uids, "unknown")...), all)
}
