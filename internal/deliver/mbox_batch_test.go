package deliver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// A group reaches the mbox only at its Flush, appended under one lock,
// with the quoting and separators of Deliver: the mbox reads back byte
// for byte. Meanwhile the mbox is neither changed nor locked.
func TestMboxBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	// An existing mbox whose last message lacks its empty line.
	if err := os.WriteFile(path, []byte("From x Thu Jan  1 00:00:00 1970\nSubject: old\n\nbody"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		[]byte("Return-Path: <bounce@example.org>\r\nSubject: a\r\n\r\nFrom here\r\n>From there\r\n"),
		[]byte("From: \"Bob\" <bob@example.com>\r\nSubject: b\r\n\r\nno final line end >From"),
		[]byte("Subject: c\n\nFrom LF only\n\n\nFrom again\n"),
		[]byte("Subject: d\r\n\r\n" + strings.Repeat("From a long line\r\n", 10000)),
	}
	before, _ := os.ReadFile(path)
	b := m.Batch()
	for _, msg := range msgs {
		n, err := b.Add(iotest.HalfReader(bytes.NewReader(msg)), mboxDate)
		if err != nil || n != int64(len(msg)) {
			t.Fatalf("Add: %d, %v", n, err)
		}
	}
	if b.Pending() != len(msgs) {
		t.Fatalf("Pending = %d", b.Pending())
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
		t.Fatal("the mbox changed before the Flush")
	}
	// The mbox is not locked while the group gathers: another writer
	// delivers meanwhile, and the group comes after its message.
	other, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	other.LockTimeout = 100 * time.Millisecond
	if _, err := other.Deliver(strings.NewReader("Subject: other\r\n\r\n"), mboxDate); err != nil {
		t.Fatalf("Deliver while a group gathers: %v", err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dotlock left after the Flush: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := SplitMbox(data)
	if err != nil || len(got) != len(msgs)+2 {
		t.Fatalf("SplitMbox: %d messages, %v; want %d", len(got), err, len(msgs)+2)
	}
	if string(got[0].Body) != "Subject: old\n\nbody\n" || string(got[1].Body) != "Subject: other\r\n\r\n" {
		t.Fatalf("first two: %q, %q", got[0].Body, got[1].Body)
	}
	for i, msg := range msgs {
		want := msg
		if !bytes.HasSuffix(want, []byte("\n")) {
			want = append(bytes.Clone(want), '\n')
		}
		if !bytes.Equal(got[i+2].Body, want) {
			t.Fatalf("message %d: %d bytes back, want %d", i, len(got[i+2].Body), len(want))
		}
	}
	if got[2].From != "bounce@example.org Sat Mar  7 08:05:01 2026" {
		t.Fatalf("separator line %q", got[2].From)
	}
	if !strings.Contains(string(data), "\n\nFrom bounce@example.org ") || !strings.Contains(string(data), "\n>From here\r\n>>From there\r\n") {
		t.Fatalf("separator or quoting lost:\n%.400s", data)
	}
}

// A message that fails in the middle of a group is cut off; the rest of
// the group stays and is flushed.
func TestMboxBatchAddFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Batch()
	if _, err := b.Add(strings.NewReader("Subject: one\r\n\r\n1\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("From line that is quoted\r\n", 20000)
	broken := io.MultiReader(strings.NewReader(big), iotest.ErrReader(errors.New("connection lost")))
	if _, err := b.Add(broken, mboxDate); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Add of a broken message: %v", err)
	}
	m.failAfter = 100 << 10
	if _, err := b.Add(strings.NewReader(big), mboxDate); err == nil {
		t.Fatal("Add succeeded with a failing write")
	}
	m.failAfter = 0
	if _, err := b.Add(strings.NewReader("Subject: two\r\n\r\n2\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 2 {
		t.Fatalf("Pending = %d, want 2", b.Pending())
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got, err := SplitMbox(data)
	if err != nil || len(got) != 2 || string(got[0].Body) != "Subject: one\r\n\r\n1\r\n" || string(got[1].Body) != "Subject: two\r\n\r\n2\r\n" {
		t.Fatalf("after failed Adds: %q, %v", got, err)
	}
	// A group whose only message failed appends nothing.
	if _, err := b.Add(iotest.ErrReader(errors.New("gone")), mboxDate); err == nil {
		t.Fatal("Add of a failing reader succeeded")
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatal("a failed Add changed the mbox")
	}
}

// A Flush that cannot take the locks, or whose append fails half-way,
// leaves the mbox as it was and drops the group; the next group goes
// through.
func TestMboxBatchFlushFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	m.LockTimeout = 100 * time.Millisecond
	if _, err := m.Deliver(strings.NewReader("Subject: kept\r\n\r\nkept\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	big := "Subject: big\r\n\r\n" + strings.Repeat("From line that is quoted\r\n", 20000)
	b := m.Batch()
	add := func() {
		t.Helper()
		for _, s := range []string{"Subject: 1\r\n\r\n", big} {
			if _, err := b.Add(strings.NewReader(s), mboxDate); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Another program holds the dotlock.
	add()
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); !errors.Is(err, ErrMboxLocked) {
		t.Fatalf("Flush under another dotlock: %v, want ErrMboxLocked", err)
	}
	os.Remove(path + ".lock")
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) || b.Pending() != 0 {
		t.Fatalf("after a Flush refused the lock: %d bytes, want %d; %d pending", len(after), len(before), b.Pending())
	}

	// The disk fails in the middle of the append.
	add()
	m.failAfter = 100 << 10
	if err := b.Flush(); err == nil {
		t.Fatal("Flush succeeded with a failing write")
	}
	m.failAfter = 0
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("after a failed append: %d bytes, want %d", len(after), len(before))
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dotlock left after a failed Flush: %v", err)
	}

	add()
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got, err := SplitMbox(data)
	if err != nil || len(got) != 3 || string(got[2].Body) != big {
		t.Fatalf("after the failures: %d messages, %v", len(got), err)
	}
}

// Discard drops the group: nothing of it reaches the mbox.
func TestMboxBatchDiscard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deliver(strings.NewReader("Subject: kept\r\n\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	b := m.Batch()
	for i := range 3 {
		if _, err := b.Add(strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n", i)), mboxDate); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Discard(); n != 3 {
		t.Fatalf("Discard = %d", n)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("the mbox holds %d bytes after Discard, want %d", len(after), len(before))
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Adds from many goroutines, with Flushes meanwhile: every message is in
// the mbox once, whole.
func TestMboxBatchConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Batch()
	const writers, each = 6, 30
	msg := func(w, i int) string {
		return fmt.Sprintf("Subject: %d-%d\r\n\r\nFrom %s\r\n", w, i, strings.Repeat("y", (w*each+i)*53%5000))
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var fl sync.WaitGroup
	fl.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				if err := b.Flush(); err != nil {
					t.Error(err)
				}
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Add(strings.NewReader(msg(w, i)), mboxDate); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	fl.Wait()
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got, err := SplitMbox(data)
	if err != nil || len(got) != writers*each {
		t.Fatalf("SplitMbox: %d messages, %v; want %d", len(got), err, writers*each)
	}
	var bodies, want []string
	for _, g := range got {
		bodies = append(bodies, string(g.Body))
	}
	for w := range writers {
		for i := range each {
			want = append(want, msg(w, i))
		}
	}
	sort.Strings(bodies)
	sort.Strings(want)
	if strings.Join(bodies, "|") != strings.Join(want, "|") {
		t.Fatal("the mbox does not hold each message once")
	}
}
