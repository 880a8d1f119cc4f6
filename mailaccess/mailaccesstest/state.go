package mailaccesstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// StateOptions tunes TestState.
type StateOptions struct {
	// Reopen, when set, closes s and returns a new State on the same
	// storage (the same file, the same database). The suite then checks
	// that every record and mark that Put and SetMark stored is still
	// there, and that the State goes on working. Without it, durability
	// across a reopen is not checked.
	Reopen func(t *testing.T, s mailaccess.State) mailaccess.State
}

// TestState runs the conformance suite of a mailaccess.State, in the
// spirit of testing/fstest.TestFS. open is called once per subtest and
// must return a new, empty State (closed by a t.Cleanup of its own). The
// IncrementalState methods are checked when the State implements them.
//
// The suite checks that:
//   - every Record field comes back as it was put: UID, Epoch, Delivered
//     to the nanosecond (compared with time.Time.Equal, so the location
//     may change), Size up to math.MaxInt64, a full SHA-256 and CopiedTo;
//   - Put replaces a record of the same UID (within one batch too: the
//     last one wins), stores large batches, and an empty Put changes
//     nothing; Forget removes only the named UIDs and an unknown UID is
//     not an error;
//   - mailboxes are isolated, including names with spaces, slashes,
//     quotes, SQL wildcards, non-ASCII letters, names that differ only in
//     case or are prefixes of each other, and long names;
//   - UIDs are kept byte for byte: IMAP's "1700000000/42", "sha256:..."
//     and every character that a POP3 UIDL may hold (0x21 to 0x7E);
//   - Mark, SetMark, Count and Lookup agree with what was put and
//     forgotten, across several UID epochs;
//   - with StateOptions.Reopen, everything survives a reopen;
//   - the State is safe for concurrent use by the Fetchers of different
//     mailboxes (run it under the race detector);
//   - a Put whose context is cancelled, before or during the call, stores
//     either the whole batch or none of it, and stores all of it when it
//     returns nil; the State works normally afterwards.
//
// Names, UIDs, epochs and folders in the suite are valid UTF-8 without
// NUL, as drivers produce them.
func TestState(t *testing.T, open func(t *testing.T) mailaccess.State, opts *StateOptions) {
	if opts == nil {
		opts = &StateOptions{}
	}
	inc := func(t *testing.T) mailaccess.IncrementalState {
		t.Helper()
		s := open(t)
		is, ok := s.(mailaccess.IncrementalState)
		if !ok {
			t.Skipf("%T is not a mailaccess.IncrementalState", s)
		}
		return is
	}
	t.Run("RoundTrip", func(t *testing.T) { testStateRoundTrip(t, open(t)) })
	t.Run("PutReplaces", func(t *testing.T) { testStatePutReplaces(t, open(t)) })
	t.Run("Batch", func(t *testing.T) { testStateBatch(t, open(t)) })
	t.Run("Forget", func(t *testing.T) { testStateForget(t, open(t)) })
	t.Run("Mailboxes", func(t *testing.T) { testStateMailboxes(t, open(t)) })
	t.Run("OddUIDs", func(t *testing.T) { testStateOddUIDs(t, open(t)) })
	t.Run("Mark", func(t *testing.T) { testStateMark(t, inc(t)) })
	t.Run("Count", func(t *testing.T) { testStateCount(t, inc(t)) })
	t.Run("Lookup", func(t *testing.T) { testStateLookup(t, inc(t)) })
	t.Run("Reopen", func(t *testing.T) {
		if opts.Reopen == nil {
			t.Skip("no StateOptions.Reopen")
		}
		testStateReopen(t, open(t), opts.Reopen)
	})
	t.Run("Concurrent", func(t *testing.T) { testStateConcurrent(t, open(t)) })
	t.Run("CancelledPut", func(t *testing.T) { testStateCancelledPut(t, open(t)) })
}

// stateRecord returns a record of uid whose other fields derive from uid
// and version, so that two versions of one UID differ in every field.
func stateRecord(uid string, version int) mailaccess.Record {
	return mailaccess.Record{
		UID:       mailaccess.UID(uid),
		Epoch:     fmt.Sprint(1700000000 + version),
		Delivered: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(version)*time.Hour + time.Duration(len(uid))*time.Nanosecond),
		Size:      int64(1000*version + len(uid)),
		SHA256:    sha256.Sum256(fmt.Appendf(nil, "%s %d", uid, version)),
	}
}

func sameRecord(a, b mailaccess.Record) bool {
	return a.UID == b.UID && a.Epoch == b.Epoch && a.Delivered.Equal(b.Delivered) &&
		a.Size == b.Size && a.SHA256 == b.SHA256 && a.CopiedTo == b.CopiedTo
}

func fmtRecord(r mailaccess.Record) string {
	return fmt.Sprintf("{UID %q Epoch %q Delivered %s Size %d SHA256 %x CopiedTo %q}",
		r.UID, r.Epoch, r.Delivered.Format(time.RFC3339Nano), r.Size, r.SHA256[:], r.CopiedTo)
}

// sameRecords fails the test unless got holds exactly want's records, in
// any order, each once.
func sameRecords(t testing.TB, what string, got, want []mailaccess.Record) {
	t.Helper()
	if err := diffRecords(got, want); err != "" {
		t.Fatalf("%s: %s", what, err)
	}
}

// diffRecords says how got differs from want ("" when they hold the same
// records, in any order, each once).
func diffRecords(got, want []mailaccess.Record) string {
	byUID := make(map[mailaccess.UID]mailaccess.Record, len(want))
	for _, r := range want {
		byUID[r.UID] = r
	}
	seen := make(map[mailaccess.UID]bool, len(got))
	for _, r := range got {
		w, ok := byUID[r.UID]
		switch {
		case !ok:
			return fmt.Sprintf("unexpected record %s", fmtRecord(r))
		case seen[r.UID]:
			return fmt.Sprintf("UID %q returned twice", r.UID)
		case !sameRecord(r, w):
			return fmt.Sprintf("record changed:\n got %s\nwant %s", fmtRecord(r), fmtRecord(w))
		}
		seen[r.UID] = true
	}
	if len(seen) != len(byUID) {
		var missing []string
		for u := range byUID {
			if !seen[u] {
				missing = append(missing, string(u))
			}
		}
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], "...")
		}
		return fmt.Sprintf("%d of %d records missing: %q", len(byUID)-len(seen), len(byUID), missing)
	}
	return ""
}

func records(t testing.TB, s mailaccess.State, mailbox string) []mailaccess.Record {
	t.Helper()
	recs, err := s.Records(ctxT(t), mailbox)
	if err != nil {
		t.Fatalf("Records(%q): %v", mailbox, err)
	}
	return recs
}

func put(t testing.TB, s mailaccess.State, mailbox string, recs ...mailaccess.Record) {
	t.Helper()
	if err := s.Put(ctxT(t), mailbox, recs...); err != nil {
		t.Fatalf("Put(%q, %d records): %v", mailbox, len(recs), err)
	}
}

func forget(t testing.TB, s mailaccess.State, mailbox string, uids ...mailaccess.UID) {
	t.Helper()
	if err := s.Forget(ctxT(t), mailbox, uids...); err != nil {
		t.Fatalf("Forget(%q, %q): %v", mailbox, uids, err)
	}
}

func lookup(t testing.TB, s mailaccess.IncrementalState, mailbox string, uids ...mailaccess.UID) []mailaccess.Record {
	t.Helper()
	recs, err := s.Lookup(ctxT(t), mailbox, uids...)
	if err != nil {
		t.Fatalf("Lookup(%q, %d UIDs): %v", mailbox, len(uids), err)
	}
	return recs
}

func mark(t testing.TB, s mailaccess.IncrementalState, mailbox string) mailaccess.UID {
	t.Helper()
	u, err := s.Mark(ctxT(t), mailbox)
	if err != nil {
		t.Fatalf("Mark(%q): %v", mailbox, err)
	}
	return u
}

func setMark(t testing.TB, s mailaccess.IncrementalState, mailbox string, uid mailaccess.UID) {
	t.Helper()
	if err := s.SetMark(ctxT(t), mailbox, uid); err != nil {
		t.Fatalf("SetMark(%q, %q): %v", mailbox, uid, err)
	}
}

func wantCount(t testing.TB, s mailaccess.IncrementalState, mailbox, epoch string, total, inEpoch int) {
	t.Helper()
	gt, ge, err := s.Count(ctxT(t), mailbox, epoch)
	if err != nil {
		t.Fatalf("Count(%q, %q): %v", mailbox, epoch, err)
	}
	if gt != total || ge != inEpoch {
		t.Fatalf("Count(%q, %q) = %d, %d; want %d, %d", mailbox, epoch, gt, ge, total, inEpoch)
	}
}

// printableASCII is every character that a POP3 UIDL may hold (RFC 1939:
// 0x21 to 0x7E).
func printableASCII() string {
	var b strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

// fullRecords are records that use the whole range of every field.
func fullRecords() []mailaccess.Record {
	var ones, mixed [32]byte
	for i := range ones {
		ones[i] = 0xff
		mixed[i] = byte(i * 37)
	}
	return []mailaccess.Record{
		{UID: "1700000000/42", Epoch: "1700000000", Delivered: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC), Size: 1234, SHA256: sha256.Sum256([]byte("one"))},
		// No epoch (POP3), a time in another zone, a folder with spaces,
		// quotes and non-ASCII letters.
		{UID: mailaccess.UID("sha256:" + hex.EncodeToString(mixed[:])), Epoch: "", Delivered: time.Date(2001, 9, 9, 3, 46, 40, 1, time.FixedZone("CEST", 2*3600)), Size: 0, SHA256: ones, CopiedTo: `Archive/2026 Entwürfe "q" 'x' %_ 日本`},
		{UID: mailaccess.UID(printableASCII()), Epoch: "1", Delivered: time.Date(2200, 12, 31, 23, 59, 59, 999999999, time.UTC), Size: math.MaxInt64, SHA256: [32]byte{}, CopiedTo: "Archive"},
		{UID: "#1", Epoch: "4294967295", Delivered: time.Unix(0, 1), Size: 1 << 40, SHA256: mixed},
		// A time with a monotonic reading and a local zone.
		{UID: mailaccess.UID("UID-with-a-rather-long-value-" + strings.Repeat("x", 400)), Epoch: "7", Delivered: time.Now(), Size: 1 << 31, SHA256: sha256.Sum256(nil)},
	}
}

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

func testStateReopen(t *testing.T, s mailaccess.State, reopen func(*testing.T, mailaccess.State) mailaccess.State) {
	mbs := oddMailboxes()[:4]
	want := make(map[string][]mailaccess.Record)
	full := fullRecords()
	for i, mb := range mbs {
		for j := range 50 {
			want[mb] = append(want[mb], stateRecord(fmt.Sprintf("%d/%d", i, j), j%4))
		}
		want[mb] = append(want[mb], full...)
		put(t, s, mb, want[mb][:10]...)
		put(t, s, mb, want[mb][10:]...)
	}
	forget(t, s, mbs[0], "0/0", "0/1")
	want[mbs[0]] = want[mbs[0]][2:]
	repl := stateRecord("1/5", 9)
	repl.CopiedTo = "Archive"
	put(t, s, mbs[1], repl)
	want[mbs[1]][5] = repl
	is, incremental := s.(mailaccess.IncrementalState)
	if incremental {
		setMark(t, is, mbs[0], "0/49")
		setMark(t, is, mbs[1], "1/1")
		setMark(t, is, mbs[1], "1/2")
	}
	check := func(s mailaccess.State, when string) {
		t.Helper()
		for _, mb := range mbs {
			sameRecords(t, fmt.Sprintf("Records(%q) %s", mb, when), records(t, s, mb), want[mb])
		}
		if !incremental {
			return
		}
		is := s.(mailaccess.IncrementalState)
		for mb, m := range map[string]mailaccess.UID{mbs[0]: "0/49", mbs[1]: "1/2", mbs[2]: ""} {
			if got := mark(t, is, mb); got != m {
				t.Fatalf("Mark(%q) %s = %q, want %q", mb, when, got, m)
			}
		}
		wantCount(t, is, mbs[1], "1700000001", len(want[mbs[1]]), 12)
		sameRecords(t, "Lookup "+when, lookup(t, is, mbs[1], "1/5", "1/6", "none"), []mailaccess.Record{repl, want[mbs[1]][6]})
	}
	s = reopen(t, s)
	check(s, "after a reopen")
	// The reopened State goes on working, and a second reopen keeps
	// what it stored.
	extra := stateRecord("3/new", 1)
	put(t, s, mbs[3], extra)
	want[mbs[3]] = append(want[mbs[3]], extra)
	s = reopen(t, s)
	check(s, "after a second reopen")
}

func testStateConcurrent(t *testing.T, s mailaccess.State) {
	const workers, rounds = 8, 25
	is, incremental := s.(mailaccess.IncrementalState)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			mb := fmt.Sprintf("imap://user%d@example.com/INBOX", w)
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			want := map[mailaccess.UID]mailaccess.Record{}
			for i := range rounds {
				batch := []mailaccess.Record{stateRecord(fmt.Sprintf("%d/%d", w, i), w)}
				if i%4 == 0 {
					for j := range 20 {
						batch = append(batch, stateRecord(fmt.Sprintf("%d/b%d.%d", w, i, j), w))
					}
				}
				if err := s.Put(ctx, mb, batch...); err != nil {
					fail("Put: %v", err)
					return
				}
				for _, r := range batch {
					want[r.UID] = r
				}
				if i%3 == 0 && i > 0 {
					u := mailaccess.UID(fmt.Sprintf("%d/%d", w, i/2))
					if err := s.Forget(ctx, mb, u); err != nil {
						fail("Forget: %v", err)
						return
					}
					delete(want, u)
				}
				if incremental {
					if err := is.SetMark(ctx, mb, batch[0].UID); err != nil {
						fail("SetMark: %v", err)
						return
					}
					if m, err := is.Mark(ctx, mb); err != nil || m != batch[0].UID {
						fail("Mark = %q, %v; want %q", m, err, batch[0].UID)
						return
					}
					total, in, err := is.Count(ctx, mb, batch[0].Epoch)
					if err != nil || total != len(want) || in != len(want) {
						fail("Count = %d, %d, %v; want %d", total, in, err, len(want))
						return
					}
					got, err := is.Lookup(ctx, mb, batch[0].UID, "none")
					if err != nil || len(got) != 1 || !sameRecord(got[0], batch[0]) {
						fail("Lookup = %v, %v", got, err)
						return
					}
				}
				if i%10 == 9 {
					got, err := s.Records(ctx, mb)
					if err != nil {
						fail("Records: %v", err)
						return
					}
					if d := diffRecords(got, mapValues(want)); d != "" {
						fail("Records: %s", d)
						return
					}
				}
			}
			got, err := s.Records(ctx, mb)
			if err != nil {
				fail("Records: %v", err)
				return
			}
			if d := diffRecords(got, mapValues(want)); d != "" {
				fail("final Records: %s", d)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mapValues(m map[mailaccess.UID]mailaccess.Record) []mailaccess.Record {
	out := make([]mailaccess.Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// testStateCancelledPut checks that a Put whose context ends stores the
// whole batch or none of it: with the context cancelled before the call,
// and cancelled at a series of moments during it. A batch replaces some
// records too, so a half-applied one would show old and new versions
// side by side.
func testStateCancelledPut(t *testing.T, s mailaccess.State) {
	const n = 1000
	batch := func(version int) []mailaccess.Record {
		recs := make([]mailaccess.Record, n)
		for i := range recs {
			recs[i] = stateRecord(fmt.Sprintf("1/%d", i), version)
		}
		return recs
	}
	// check reports whether the mailbox holds old (all of version 0, or
	// nothing when old is nil) or new (version 1); it fails the test on a
	// mixture, or on old after a nil error.
	check := func(mb string, old, new []mailaccess.Record, err error, what string) (applied bool) {
		t.Helper()
		got := records(t, s, mb)
		if diffRecords(got, new) == "" {
			return true
		}
		if d := diffRecords(got, old); d != "" {
			t.Fatalf("%s: half a batch was stored (%d records, neither the old %d nor the new %d); against the old: %s", what, len(got), len(old), len(new), d)
		}
		if err == nil {
			t.Fatalf("%s: Put returned nil but did not store the batch", what)
		}
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Put(ctx, "cancelled/new", batch(1)...)
	check("cancelled/new", nil, batch(1), err, "Put with a cancelled context to an empty mailbox")
	put(t, s, "cancelled/old", batch(0)[:n/2]...)
	err = s.Put(ctx, "cancelled/old", batch(1)...)
	check("cancelled/old", batch(0)[:n/2], batch(1), err, "Put with a cancelled context over older records")

	// Cancelled during the call, at growing delays: early ones catch it
	// before it starts, late ones after it finished, the ones between in
	// the middle (where a State may stop, but only as a whole).
	stored, refused := 0, 0
	for i, d := range []time.Duration{0, 20 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		mb := fmt.Sprintf("cancelled/during/%d", i)
		old := batch(0)[:n/2]
		put(t, s, mb, old...)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(d, cancel)
		err := s.Put(ctx, mb, batch(1)...)
		timer.Stop()
		cancel()
		if check(mb, old, batch(1), err, fmt.Sprintf("Put cancelled after %v", d)) {
			stored++
		} else {
			refused++
		}
	}
	t.Logf("Put cancelled during the call: %d stored the batch, %d refused it", stored, refused)
	// The State goes on working.
	put(t, s, "cancelled/after", stateRecord("1/1", 1))
	sameRecords(t, "Put after cancelled ones", records(t, s, "cancelled/after"), []mailaccess.Record{stateRecord("1/1", 1)})
}
