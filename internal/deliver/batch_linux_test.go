package deliver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A group of n messages costs one syncfs and one fsync of new/, and no
// sync while it is written; a single Deliver costs an fsync of its file
// and one of new/.
func TestMaildirBatchSyncs(t *testing.T) {
	withGroupSyncfs(t, true)
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	c := countSyncs(t)
	// Nothing of a group is in new/ before its syncfs, the tmp/ files
	// are all there.
	published := 0
	c.fail = func(kind string) error {
		if kind == "syncfs" {
			if n := len(dirNames(t, dir, "new")); n != published {
				t.Errorf("new/ holds %d files at the syncfs, want the %d published before", n, published)
			}
		}
		return nil
	}
	for _, n := range []int{1, 5, 64} {
		b := m.Batch()
		for i := range n {
			if _, err := b.Add(strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n", i))); err != nil {
				t.Fatal(err)
			}
		}
		if fsync, syncfs, file := c.counts(); fsync+syncfs+file != 0 {
			t.Fatalf("%d Adds synced: %d fsync, %d syncfs, %d by name", n, fsync, syncfs, file)
		}
		if _, err := b.Flush(); err != nil {
			t.Fatal(err)
		}
		if fsync, syncfs, file := c.counts(); fsync != 1 || syncfs != 1 || file != 0 {
			t.Fatalf("Flush of %d: %d fsync, %d syncfs, %d by name; want 1 fsync (new/) and 1 syncfs", n, fsync, syncfs, file)
		}
		published += n
		c.fsync, c.syncfs, c.file = 0, 0, 0
	}
	if _, _, err := m.Deliver(strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	if fsync, syncfs, file := c.counts(); fsync != 2 || syncfs != 0 || file != 0 {
		t.Fatalf("Deliver: %d fsync, %d syncfs, %d by name; want 2 fsync", fsync, syncfs, file)
	}
}

// Where syncfs does not report write errors (Linux before 5.8), each
// file is fsynced as it is added, and the Flush fsyncs new/ alone.
func TestMaildirBatchSyncsWithoutSyncfs(t *testing.T) {
	withGroupSyncfs(t, false)
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	c := countSyncs(t)
	b := m.Batch()
	for i := range 7 {
		if _, err := b.Add(strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if fsync, syncfs, _ := c.counts(); fsync != 7 || syncfs != 0 {
		t.Fatalf("7 Adds: %d fsync, %d syncfs; want 7 fsync", fsync, syncfs)
	}
	paths, err := b.Flush()
	if err != nil || len(paths) != 7 {
		t.Fatalf("Flush: %v, %v", paths, err)
	}
	if fsync, syncfs, _ := c.counts(); fsync != 8 || syncfs != 0 {
		t.Fatalf("after the Flush: %d fsync, %d syncfs; want 8 fsync", fsync, syncfs)
	}
	// An fsync that fails in Add leaves nothing behind.
	c.fail = func(string) error { return syscall.EIO }
	if _, err := b.Add(strings.NewReader("x")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Add with a failing fsync: %v", err)
	}
	if b.Pending() != 0 || len(dirNames(t, dir, "tmp")) != 0 {
		t.Fatalf("a failed Add left %d pending, tmp/ %v", b.Pending(), dirNames(t, dir, "tmp"))
	}
}

// A Flush whose syncfs fails, or whose fsync of new/ fails after the
// renames, publishes nothing of its group, removes its files from tmp/
// and says why; the next group goes through.
func TestMaildirBatchSyncFails(t *testing.T) {
	withGroupSyncfs(t, true)
	for _, kind := range []string{"syncfs", "fsync"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Mail")
			m := openMaildir(t, dir)
			if _, _, err := m.Deliver(strings.NewReader("before")); err != nil {
				t.Fatal(err)
			}
			old := dirNames(t, dir, "new")
			c := countSyncs(t)
			c.fail = func(k string) error {
				if k == kind {
					return syscall.EIO
				}
				return nil
			}
			b := m.Batch()
			for i := range 4 {
				if _, err := b.Add(strings.NewReader(fmt.Sprintf("m%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			paths, err := b.Flush()
			if !errors.Is(err, syscall.EIO) || paths != nil {
				t.Fatalf("Flush with a failing %s: %v, %v", kind, paths, err)
			}
			if got := dirNames(t, dir, "new"); !slicesEqual(got, old) {
				t.Fatalf("new/ holds %v after the failed Flush, want %v", got, old)
			}
			if n := len(dirNames(t, dir, "tmp")); n != 0 {
				t.Fatalf("tmp/ holds %d files after the failed Flush", n)
			}
			if fsync, syncfs, _ := c.counts(); kind == "syncfs" && (syncfs != 1 || fsync != 0) {
				t.Fatalf("%d syncfs, %d fsync: the Flush went on after its syncfs failed", syncfs, fsync)
			}
			c.fail = nil
			if _, err := b.Add(strings.NewReader("after")); err != nil {
				t.Fatal(err)
			}
			paths, err = b.Flush()
			if err != nil || len(paths) != 1 {
				t.Fatalf("next Flush: %v, %v", paths, err)
			}
			if got, _ := os.ReadFile(paths[0]); string(got) != "after" {
				t.Fatalf("%s holds %q", paths[0], got)
			}
			if n := len(dirNames(t, dir, "new")); n != len(old)+1 {
				t.Fatalf("new/ holds %d, want %d", n, len(old)+1)
			}
		})
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// An mbox group takes one lock and one fsync, however many messages it
// holds; Deliver one fsync per message.
func TestMboxBatchSyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	c := countSyncs(t)
	b := m.Batch()
	for i := range 50 {
		if _, err := b.Add(strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nFrom here\r\n", i)), mboxDate); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, file := c.counts(); file != 0 {
		t.Fatalf("50 Adds made %d syncs", file)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, _, file := c.counts(); file != 1 {
		t.Fatalf("Flush of 50 messages: %d syncs, want 1", file)
	}
	for range 3 {
		if _, err := m.Deliver(strings.NewReader("Subject: d\r\n\r\n"), mboxDate); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, file := c.counts(); file != 4 {
		t.Fatalf("3 Delivers: %d syncs in all, want 4", file-1)
	}
	data, _ := os.ReadFile(path)
	if got, err := SplitMbox(data); err != nil || len(got) != 53 {
		t.Fatalf("the mbox holds %d messages, %v; want 53", len(got), err)
	}
}

// A Flush whose fsync fails truncates the mbox back to its size before
// the group, releases the locks and says why; delivering the same
// messages again puts each in once.
func TestMboxBatchSyncFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deliver(strings.NewReader("Subject: kept\r\n\r\nkept\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	msgs := []string{"Subject: 1\r\n\r\nFrom a\r\n", "Subject: 2\r\n\r\n>From b", "Subject: 3\r\n\r\n"}
	c := countSyncs(t)
	c.fail = func(string) error { return syscall.EIO }
	b := m.Batch()
	for _, s := range msgs {
		if _, err := b.Add(strings.NewReader(s), mboxDate); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Flush with a failing fsync: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("the mbox holds %d bytes after the failed Flush, want %d", len(after), len(before))
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dotlock left after a failed Flush: %v", err)
	}
	c.fail = nil
	for _, s := range msgs {
		if _, err := b.Add(strings.NewReader(s), mboxDate); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got, err := SplitMbox(data)
	if err != nil || len(got) != 4 {
		t.Fatalf("the mbox holds %d messages, %v; want 4", len(got), err)
	}
	for i, s := range msgs {
		want := s
		if !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if string(got[i+1].Body) != want {
			t.Fatalf("message %d: %q, want %q", i, got[i+1].Body, want)
		}
	}
}
