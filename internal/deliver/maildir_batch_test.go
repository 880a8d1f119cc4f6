package deliver

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-maildir"
)

// batchMessages returns messages of every awkward size: empty, one byte,
// around the write buffer, and several buffers long.
func batchMessages() [][]byte {
	var out [][]byte
	for i, size := range []int{0, 1, 17, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 5} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i*31 + j*7)
		}
		out = append(out, b)
	}
	return append(out, []byte("Subject: a\r\n\r\nFrom x\r\n"))
}

// dirNames returns the names in dir/sub.
func dirNames(t *testing.T, dir, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A group is written into tmp/ and appears in new/ only at its Flush,
// byte for byte, in the order it was added.
func TestMaildirBatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	b := m.Batch()
	msgs := batchMessages()
	for i, msg := range msgs {
		var r io.Reader = bytes.NewReader(msg)
		if i%2 == 1 {
			r = &oneByteReader{b: msg}
		}
		n, err := b.Add(r)
		if err != nil || n != int64(len(msg)) {
			t.Fatalf("Add of %d bytes: %d, %v", len(msg), n, err)
		}
	}
	if got := b.Pending(); got != len(msgs) {
		t.Fatalf("Pending = %d, want %d", got, len(msgs))
	}
	if n := len(dirNames(t, dir, "new")); n != 0 {
		t.Fatalf("new/ holds %d files before the Flush", n)
	}
	if n := len(dirNames(t, dir, "tmp")); n != len(msgs) {
		t.Fatalf("tmp/ holds %d files before the Flush, want %d", n, len(msgs))
	}
	paths, err := b.Flush()
	if err != nil || len(paths) != len(msgs) {
		t.Fatalf("Flush: %d paths, %v", len(paths), err)
	}
	for i, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, msgs[i]) {
			t.Fatalf("message %d: %s holds %d bytes (%v), want %d", i, p, len(got), err, len(msgs[i]))
		}
		if filepath.Dir(p) != filepath.Join(dir, "new") {
			t.Fatalf("message %d published at %s", i, p)
		}
	}
	if n := len(dirNames(t, dir, "tmp")); n != 0 {
		t.Fatalf("tmp/ holds %d files after the Flush", n)
	}
	// Nothing more to flush.
	if paths, err := b.Flush(); err != nil || paths != nil || b.Pending() != 0 {
		t.Fatalf("empty Flush: %v, %v", paths, err)
	}
	// The next group is a group of its own.
	if _, err := b.Add(bytes.NewReader([]byte("next"))); err != nil {
		t.Fatal(err)
	}
	if paths, err := b.Flush(); err != nil || len(paths) != 1 {
		t.Fatalf("second group: %v, %v", paths, err)
	}
	if n := len(dirNames(t, dir, "new")); n != len(msgs)+1 {
		t.Fatalf("new/ holds %d, want %d", n, len(msgs)+1)
	}
	// go-maildir reads what was delivered (and moves it into cur/).
	if unseen, err := maildir.Dir(dir).Unseen(); err != nil || len(unseen) != len(msgs)+1 {
		t.Fatalf("go-maildir sees %d new messages, %v", len(unseen), err)
	}
}

// A message whose reading fails leaves nothing, and the rest of its
// group is published.
func TestMaildirBatchAddFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	b := m.Batch()
	if _, err := b.Add(bytes.NewReader([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(&failingReader{n: 5}); err == nil {
		t.Fatal("Add succeeded on a failing reader")
	}
	if _, err := b.Add(io.MultiReader(bytes.NewReader(make([]byte, bufSize+3)), errReader{io.ErrUnexpectedEOF})); err == nil {
		t.Fatal("Add succeeded on a reader cut short")
	}
	if _, err := b.Add(bytes.NewReader([]byte("two"))); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 2 || len(dirNames(t, dir, "tmp")) != 2 {
		t.Fatalf("after two failed Adds: %d pending, tmp/ holds %v", b.Pending(), dirNames(t, dir, "tmp"))
	}
	paths, err := b.Flush()
	if err != nil || len(paths) != 2 {
		t.Fatalf("Flush: %v, %v", paths, err)
	}
	for i, want := range []string{"one", "two"} {
		if got, _ := os.ReadFile(paths[i]); string(got) != want {
			t.Fatalf("message %d holds %q, want %q", i, got, want)
		}
	}
	if n := len(dirNames(t, dir, "tmp")); n != 0 {
		t.Fatalf("tmp/ holds %d files", n)
	}
}

// Discard removes the group from tmp/ and publishes nothing.
func TestMaildirBatchDiscard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	b := m.Batch()
	for _, s := range []string{"a", "b"} {
		if _, err := b.Add(bytes.NewReader([]byte(s))); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Discard(); n != 2 {
		t.Fatalf("Discard = %d, want 2", n)
	}
	emptyMaildir(t, dir)
	if paths, err := b.Flush(); err != nil || paths != nil {
		t.Fatalf("Flush after Discard: %v, %v", paths, err)
	}
	emptyMaildir(t, dir)
}

// A Flush whose renames fail (new/ is gone) publishes nothing and leaves
// tmp/ empty; once new/ is back, the next group goes through.
func TestMaildirBatchRenameFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	b := m.Batch()
	for _, s := range []string{"a", "b", "c"} {
		if _, err := b.Add(bytes.NewReader([]byte(s))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	if paths, err := b.Flush(); err == nil {
		t.Fatalf("Flush without new/ succeeded: %v", paths)
	}
	if n := len(dirNames(t, dir, "tmp")); n != 0 {
		t.Fatalf("tmp/ holds %d files after a failed Flush", n)
	}
	if b.Pending() != 0 {
		t.Fatalf("%d still pending after a failed Flush", b.Pending())
	}
	if err := os.Mkdir(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(bytes.NewReader([]byte("d"))); err != nil {
		t.Fatal(err)
	}
	paths, err := b.Flush()
	if err != nil || len(paths) != 1 {
		t.Fatalf("Flush with new/ back: %v, %v", paths, err)
	}
	if names := dirNames(t, dir, "new"); len(names) != 1 || filepath.Join(dir, "new", names[0]) != paths[0] {
		t.Fatalf("new/ holds %v, want %s", names, paths[0])
	}
}

// Adds from many goroutines, with Flushes from another one meanwhile:
// every message ends in new/ exactly once, byte for byte, and every
// Flush publishes only whole files.
func TestMaildirBatchConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	b := m.Batch()
	const writers, each = 8, 40
	want := map[string]bool{}
	for w := range writers {
		for i := range each {
			want[fmt.Sprintf("Subject: %d-%d\r\n\r\n%s\r\n", w, i, bytes.Repeat([]byte{'x'}, (w*each+i)*97%9000))] = true
		}
	}
	var published []string
	var pmu sync.Mutex
	flush := func() {
		paths, err := b.Flush()
		if err != nil {
			t.Error(err)
		}
		pmu.Lock()
		published = append(published, paths...)
		pmu.Unlock()
	}
	var wg, fl sync.WaitGroup
	done := make(chan struct{})
	fl.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				flush()
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("Subject: %d-%d\r\n\r\n%s\r\n", w, i, bytes.Repeat([]byte{'x'}, (w*each+i)*97%9000))
				if _, err := b.Add(bytes.NewReader([]byte(msg))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	fl.Wait()
	flush()
	if len(published) != writers*each {
		t.Fatalf("%d paths published, want %d", len(published), writers*each)
	}
	names := dirNames(t, dir, "new")
	if len(names) != writers*each {
		t.Fatalf("new/ holds %d files, want %d", len(names), writers*each)
	}
	slices.Sort(published)
	if len(slices.Compact(published)) != writers*each {
		t.Fatal("a path was published twice")
	}
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(dir, "new", name))
		if err != nil || !want[string(got)] {
			t.Fatalf("%s holds %d unexpected bytes (%v)", name, len(got), err)
		}
		delete(want, string(got))
	}
	if len(want) != 0 {
		t.Fatalf("%d messages missing", len(want))
	}
	if n := len(dirNames(t, dir, "tmp")); n != 0 {
		t.Fatalf("tmp/ holds %d files", n)
	}
}

// BenchmarkMaildirDelivery compares Deliver (a sync per message and one
// of new/) with a MaildirBatch of 256 messages, on messages of 3.9 KiB, in
// $UNIMAIL_SYNC_BENCH_DIR or the test's temporary directory:
//
//	UNIMAIL_SYNC_BENCH_DIR=/dev/shm go test -run '^$' -bench MaildirDelivery ./internal/deliver
func BenchmarkMaildirDelivery(b *testing.B) {
	base := os.Getenv("UNIMAIL_SYNC_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 105)
	for _, mode := range []string{"deliver", "batch256"} {
		b.Run(mode, func(b *testing.B) {
			dir, err := os.MkdirTemp(base, "delivery-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			m, err := OpenMaildir(filepath.Join(dir, "Mail"))
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			batch := m.Batch()
			b.SetBytes(int64(len(msg)))
			for i := 0; b.Loop(); i++ {
				if mode == "deliver" {
					if _, _, err := m.Deliver(bytes.NewReader(msg)); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := batch.Add(bytes.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
				if i%256 == 255 {
					if _, err := batch.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := batch.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
