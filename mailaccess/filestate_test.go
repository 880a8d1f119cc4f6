package mailaccess

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func rec(uid string) Record {
	return Record{UID: UID(uid), Epoch: "7", Delivered: time.Unix(1700000000, 5).UTC(), Size: 42, SHA256: sha256.Sum256([]byte(uid))}
}

func TestFileStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	odd := "imap://a b%c~@host/IN BOX\t\xff"
	if err := s.Put(ctx, odd, rec("7/1"), rec("7/2"), rec("7/3")); err != nil {
		t.Fatal(err)
	}
	copied := rec("7/4")
	copied.CopiedTo = "Archive/Old mail %"
	if err := s.Put(ctx, odd, copied); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "pop3://x@y", Record{UID: "", SHA256: sha256.Sum256(nil)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(ctx, odd, "7/2", "unknown"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMark(ctx, odd, "7/3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Records(ctx, odd)
	if err != nil {
		t.Fatal(err)
	}
	got := map[UID]Record{}
	for _, r := range recs {
		got[r.UID] = r
	}
	if len(got) != 3 || got["7/1"] != rec("7/1") || got["7/3"] != rec("7/3") || got["7/4"] != copied {
		t.Fatalf("records after reopen: %+v", recs)
	}
	if mark, _ := s.Mark(ctx, odd); mark != "7/3" {
		t.Fatalf("mark after reopen: %q", mark)
	}
	if recs, _ := s.Records(ctx, "pop3://x@y"); len(recs) != 1 || recs[0].UID != "" {
		t.Fatalf("empty UID record: %+v", recs)
	}
}

func TestFileStateAppendsOneLinePerPut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi0, _ := os.Stat(path)
	s.Put(t.Context(), "mb", rec("1"))
	fi1, _ := os.Stat(path)
	s.Put(t.Context(), "mb", rec("2"))
	fi2, _ := os.Stat(path)
	if d1, d2 := fi1.Size()-fi0.Size(), fi2.Size()-fi1.Size(); d1 <= 0 || d1 != d2 {
		t.Fatalf("growth per Put: %d then %d bytes, want one equal-sized line each", d1, d2)
	}
}

func TestFileStateTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t.Context(), "mb", rec("1"), rec("2"))
	s.Close()
	data, _ := os.ReadFile(path)
	line := appendRecord(nil, "mb", rec("3"))
	for cut := 1; cut < len(line); cut += 7 {
		os.WriteFile(path, append(append([]byte(nil), data...), line[:cut]...), 0o600)
		s, err := OpenFileState(path)
		if err != nil {
			t.Fatalf("torn at %d: %v", cut, err)
		}
		recs, _ := s.Records(t.Context(), "mb")
		s.Close()
		if len(recs) != 2 {
			t.Fatalf("torn at %d: %d records, want 2", cut, len(recs))
		}
		// Compaction removed the torn bytes.
		after, _ := os.ReadFile(path)
		if len(after) != len(data) {
			t.Fatalf("torn at %d: file not compacted (%d bytes, want %d)", cut, len(after), len(data))
		}
	}
}

func TestFileStateCorruptMiddleLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	os.WriteFile(path, []byte(fileStateHeader+"P mb 1 7 x 3 00\nP mb 2 7 1 3 "+fmt.Sprintf("%064x", 0)+"\n"), 0o600)
	_, err := OpenFileState(path)
	if !errors.Is(err, ErrState) {
		t.Fatalf("corrupt journal: %v, want ErrState", err)
	}
	os.WriteFile(path, []byte("something else\n"), 0o600)
	if _, err := OpenFileState(path); !errors.Is(err, ErrState) {
		t.Fatalf("foreign file: %v, want ErrState", err)
	}
}

func TestFileStateLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileState(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
	s.Close()
	s2, err := OpenFileState(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestFileStateWriteFailure(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full on this system")
	}
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Put(t.Context(), "mb", rec("1"))
	good := s.f
	s.f = full // every write now fails with ENOSPC
	if err := s.Put(t.Context(), "mb", rec("2")); !errors.Is(err, ErrState) {
		t.Fatalf("Put on a full disk: %v, want ErrState", err)
	}
	s.f = good
	s.broken = nil
	if recs, _ := s.Records(t.Context(), "mb"); len(recs) != 1 {
		t.Fatalf("a failed Put must not be remembered: %d records", len(recs))
	}
	full.Close()
}

// TestFileStateCompactsOnlyWaste: a journal is rewritten at open only when
// most of it is superseded lines (or it ends torn); otherwise it is
// appended to as it is, so that opening a large state costs a read.
func TestFileStateCompactsOnlyWaste(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	ctx := t.Context()
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fileID(fi)
	}
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := s.Put(ctx, "mb", rec(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMark(ctx, "mb", "9"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := inode()
	s, err = OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	if inode() != before {
		t.Fatal("a journal without waste was rewritten")
	}
	// Forget most records: more superseded lines than live ones.
	if err := s.Forget(ctx, "mb", "0", "1", "2", "3", "4", "5", "6", "7"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	grown := size()
	s, err = OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if inode() == before || size() >= grown {
		t.Fatalf("a journal of mostly superseded lines was not compacted: %d bytes, was %d", size(), grown)
	}
	if recs, _ := s.Records(ctx, "mb"); len(recs) != 2 {
		t.Fatalf("%d records after compaction, want 2", len(recs))
	}
	if err := s.Put(ctx, "mb", rec("10")); err != nil {
		t.Fatal(err)
	}
}

func TestFileStateLoad100k(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]Record, 100000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("1700000000/%d", i+1))
	}
	if err := s.Put(context.Background(), "imap://alice@example.com/INBOX", recs...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.Records(t.Context(), "imap://alice@example.com/INBOX")
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
}

// state100k writes a state of 100,000 records of one mailbox, closed,
// and returns its path.
func state100k(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "state")
	s, _ := OpenFileState(path)
	recs := make([]Record, 100000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("1700000000/%d", i+1))
	}
	s.Put(context.Background(), "imap://alice@example.com/INBOX", recs...)
	s.Close()
	return path
}

func BenchmarkFileStateOpen100k(b *testing.B) {
	path := state100k(b)
	for b.Loop() {
		s, err := OpenFileState(path)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func FuzzJournal(f *testing.F) {
	f.Add([]byte(fileStateHeader + string(appendRecord(nil, "mb", rec("1")))))
	f.Add([]byte(fileStateHeader + "F mb 1\n"))
	f.Add([]byte(fileStateHeader + "M mb 7/42\nM ~ %41\n"))
	f.Add([]byte(fileStateHeader + "P ~ ~ ~ 0 0 " + fmt.Sprintf("%064x", 1) + "\nP %2"))
	f.Add([]byte(fileStateHeader + string(appendRecord(nil, "mb", rec("1"))) + "F mb 1\n" + string(appendRecord(nil, "mb", rec("1")))))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFileState(path)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		// What was read reads back, writes into a new journal, and reads
		// again the same.
		ctx := t.Context()
		recs := map[string][]Record{}
		marks := map[string]UID{}
		for mb, m := range s.x.mbs {
			r, err := s.Records(ctx, mb)
			if err != nil {
				t.Fatalf("records of %q: %v", mb, err)
			}
			if len(r) != m.n {
				t.Fatalf("%d records of %q, indexed %d", len(r), mb, m.n)
			}
			recs[mb] = r
			if m.hasMark {
				marks[mb] = m.mark
			}
		}
		s.Close()
		s2, err := OpenFileState(filepath.Join(dir, "copy"))
		if err != nil {
			t.Fatal(err)
		}
		for mb, r := range recs {
			if err := s2.Put(ctx, mb, r...); err != nil {
				t.Fatal(err)
			}
		}
		for mb, u := range marks {
			if err := s2.SetMark(ctx, mb, u); err != nil {
				t.Fatal(err)
			}
		}
		s2.Close()
		s2, err = OpenFileState(filepath.Join(dir, "copy"))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		defer s2.Close()
		for mb, u := range marks {
			if got, _ := s2.Mark(ctx, mb); got != u {
				t.Fatalf("mark of %q changed", mb)
			}
		}
		for mb, rs := range recs {
			for _, r := range rs {
				got, err := s2.Lookup(ctx, mb, r.UID)
				if err != nil || len(got) != 1 {
					t.Fatalf("lookup %q %q: %v %v", mb, r.UID, got, err)
				}
				if r2 := got[0]; !r2.Delivered.Equal(r.Delivered) || r2.UID != r.UID || r2.SHA256 != r.SHA256 || r2.Epoch != r.Epoch || r2.Size != r.Size || r2.CopiedTo != r.CopiedTo {
					t.Fatalf("round trip changed %q %q", mb, r.UID)
				}
			}
		}
	})
}

func BenchmarkFileStateOpen100kNoIndex(b *testing.B) {
	path := state100k(b)
	for b.Loop() {
		os.Remove(path + ".index")
		s, err := OpenFileState(path)
		if err != nil {
			b.Fatal(err)
		}
		s.f.Close() // as a crash would: no index written
		s.f = nil
		s.r.Close()
		s.unlock()
	}
}

func FuzzIndexFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		f.Fatal(err)
	}
	s.Put(context.Background(), "mb", rec("1"), rec("2"))
	s.SetMark(context.Background(), "mb", "2")
	s.Close()
	journal, _ := os.ReadFile(path)
	index, _ := os.ReadFile(path + ".index")
	f.Add(index)
	f.Fuzz(func(t *testing.T, data []byte) {
		tail := journal[max(0, len(journal)-indexTail):]
		x, ok := parseIndex(data, int64(len(journal)), tail)
		if !ok {
			return
		}
		// An index that passes its checks reads back without panicking.
		for _, m := range x.mbs {
			m.each(func(h uint64, sl slot) {
				if sl.off >= int64(len(journal)) {
					t.Fatalf("offset %d past the journal", sl.off)
				}
				if _, ok := m.get(h); !ok {
					t.Fatal("an entry that get does not find")
				}
			})
			m.count("7")
		}
	})
}
