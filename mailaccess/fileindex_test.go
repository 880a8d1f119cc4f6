package mailaccess

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// reopenState closes s and opens its journal again.
func reopenState(t *testing.T, s *FileState) *FileState {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileState(s.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// crash ends s as a killed process would: the journal as it is, no
// index written, the lock released.
func crash(s *FileState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFiles()
	s.unlock()
}

func uids(t *testing.T, s *FileState, mb string) []string {
	t.Helper()
	recs, err := s.Records(t.Context(), mb)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.UID))
	}
	slices.Sort(out)
	return out
}

// A clean Close saves the index and the next open reads it instead of the
// journal; what changes after that (puts over indexed records, forgets,
// marks) survives the next reopen, with the counts right.
func TestFileStateIndexFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(ctx, "mb", rec("1"), rec("2"), rec("3"))
	s.Put(ctx, "other", rec("1"))
	s.SetMark(ctx, "mb", "3")
	s = reopenState(t, s)
	if !s.indexOnDisk || s.indexStale {
		t.Fatalf("the index file was not used: on disk %v, stale %v", s.indexOnDisk, s.indexStale)
	}
	if got := uids(t, s, "mb"); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("records from the index: %v", got)
	}
	// Over the indexed records: replace one with another epoch, forget
	// one, add one.
	r2 := rec("2")
	r2.Epoch = "8"
	if err := s.Put(ctx, "mb", r2, rec("4")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".index"); !os.IsNotExist(err) {
		t.Fatalf("the index file outlived a change of the journal: %v", err)
	}
	s.Forget(ctx, "mb", "1", "unknown")
	check := func(s *FileState) {
		t.Helper()
		if got := uids(t, s, "mb"); !slices.Equal(got, []string{"2", "3", "4"}) {
			t.Fatalf("records: %v", got)
		}
		if total, in7, _ := s.Count(ctx, "mb", "7"); total != 3 || in7 != 2 {
			t.Fatalf("count: %d, %d in epoch 7", total, in7)
		}
		if got, _ := s.Lookup(ctx, "mb", "2", "1", "9"); len(got) != 1 || got[0] != r2 {
			t.Fatalf("lookup: %+v", got)
		}
		if m, _ := s.Mark(ctx, "mb"); m != "3" {
			t.Fatalf("mark %q", m)
		}
		if got := uids(t, s, "other"); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("other mailbox: %v", got)
		}
	}
	check(s)
	s = reopenState(t, s)
	if !s.indexOnDisk {
		t.Fatal("the index file was not used")
	}
	check(s)
	// A run that changes the journal and is killed: no index file, the
	// journal is read.
	s.Put(ctx, "mb", rec("5"))
	crash(s)
	s, err = OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.indexOnDisk {
		t.Fatal("an index file was used after a killed run")
	}
	if got := uids(t, s, "mb"); !slices.Equal(got, []string{"2", "3", "4", "5"}) {
		t.Fatalf("records after a killed run: %v", got)
	}
}

// An index file that does not describe the journal (an older one put
// back, a damaged one) is not used.
func TestFileStateStaleIndexFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(ctx, "mb", rec("1"))
	s.Close()
	old, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	s, _ = OpenFileState(path)
	s.Put(ctx, "mb", rec("2"))
	s.Close()
	good, _ := os.ReadFile(path + ".index")

	damaged := slices.Clone(good)
	damaged[len(damaged)/2] ^= 1
	for name, data := range map[string][]byte{"older": old, "damaged": damaged, "empty": nil, "torn": good[:len(good)-3]} {
		os.WriteFile(path+".index", data, 0o600)
		s, err := OpenFileState(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.indexOnDisk {
			t.Errorf("%s index file used", name)
		}
		if got := uids(t, s, "mb"); !slices.Equal(got, []string{"1", "2"}) {
			t.Errorf("%s index file: records %v", name, got)
		}
		s.Close()
	}
}
