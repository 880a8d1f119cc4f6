package mailaccesstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
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
//   - a mailaccess.MailboxLister lists exactly the mailboxes with records
//     under a prefix, sorted, and ForgetMailbox empties one;
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
	t.Run("MailboxLister", func(t *testing.T) { testStateMailboxLister(t, open(t)) })
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
