package deliver

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emersion/go-maildir"
)

func TestMaildirDeliver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	msgs := [][]byte{[]byte("Subject: a\r\n\r\nx\r\n"), []byte("Subject: b\r\n\r\n\x00\xff\r\n")}
	for _, b := range msgs {
		path, n, err := m.Deliver(bytes.NewReader(b))
		if err != nil || n != int64(len(b)) || filepath.Base(filepath.Dir(path)) != "new" {
			t.Fatalf("Deliver: %q %d %v", path, n, err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, b) {
			t.Fatalf("file holds %q, want %q", got, b)
		}
	}
	// go-maildir reads what was delivered.
	unseen, err := maildir.Dir(dir).Unseen()
	if err != nil || len(unseen) != 2 {
		t.Fatalf("go-maildir sees %d new messages, %v", len(unseen), err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("connection lost")
	}
	f.n--
	p[0] = 'x'
	return 1, nil
}

func TestMaildirDeliverReadError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	if _, _, err := m.Deliver(io.MultiReader(&failingReader{n: 5})); err == nil {
		t.Fatal("Deliver succeeded on a failing reader")
	}
	// A reader cut short says io.ErrUnexpectedEOF: that is a failure too,
	// never the end of the message, however much it read.
	big := bytes.Repeat([]byte("y"), bufSize+10)
	for _, n := range []int64{0, 10, bufSize, bufSize + 5} {
		r := io.MultiReader(io.LimitReader(bytes.NewReader(big), n), errReader{io.ErrUnexpectedEOF})
		if _, _, err := m.Deliver(r); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Deliver of %d bytes then ErrUnexpectedEOF: %v", n, err)
		}
	}
	emptyMaildir(t, dir)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func openMaildir(t *testing.T, dir string) *Maildir {
	t.Helper()
	m, err := OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func emptyMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
			t.Fatalf("%s/ holds %d files after a failed delivery", sub, len(ents))
		}
	}
}

// oneByteReader returns its bytes one or two at a time, as a slow
// network would.
type oneByteReader struct {
	b []byte
	i int
}

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.i++
	n := min(len(p), len(r.b), 1+r.i%2)
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// Messages larger than the buffer, read in small pieces, concurrently,
// arrive byte for byte, each in a file of its own.
func TestMaildirDeliverLargeConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	var want [][]byte
	for i, size := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 17} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i + j*7)
		}
		want = append(want, b)
	}
	paths := make([]string, len(want))
	var wg sync.WaitGroup
	for i, b := range want {
		wg.Go(func() {
			var r io.Reader = bytes.NewReader(b)
			if i%2 == 1 && len(b) < 2*bufSize {
				r = &oneByteReader{b: b}
			}
			path, n, err := m.Deliver(r)
			if err != nil || n != int64(len(b)) {
				t.Errorf("Deliver of %d bytes: %d, %v", len(b), n, err)
			}
			paths[i] = path
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("message %d (%d bytes): %s holds %d bytes, %v", i, len(want[i]), p, len(got), err)
		}
		if seen[p] {
			t.Fatalf("two messages delivered to %s", p)
		}
		seen[p] = true
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
}

// A Maildir removed while open takes no message: Deliver fails, so that
// no message is reported delivered that is not on disk. Created again,
// it takes messages again. After Close, Deliver fails.
func TestMaildirRemovedOrClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m, err := OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(s string) io.Reader { return bytes.NewReader([]byte("Subject: " + s + "\r\n\r\n")) }
	if _, _, err := m.Deliver(msg("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if p, _, err := m.Deliver(msg("b")); err == nil {
		t.Fatalf("Deliver into a removed Maildir succeeded: %s", p)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p, _, err := m.Deliver(msg("c"))
	if err != nil {
		t.Fatalf("Deliver into the Maildir created again: %v", err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "Subject: c\r\n\r\n" {
		t.Fatalf("%s holds %q, %v", p, got, err)
	}
	// Removed and created again between two deliveries, without a failed
	// delivery in between: found again at once.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if m2, err := OpenMaildir(dir); err != nil {
		t.Fatal(err)
	} else {
		m2.Close()
	}
	if p, _, err = m.Deliver(msg("d")); err != nil {
		t.Fatalf("Deliver into the Maildir created again: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "new")); len(ents) != 1 || filepath.Join(dir, "new", ents[0].Name()) != p {
		t.Fatalf("new/ holds %v, want %s", ents, p)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if p, _, err := m.Deliver(msg("e")); err == nil {
		t.Fatalf("Deliver after Close succeeded: %s", p)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
}

// A Maildir whose tmp/ is not a directory opens, and every delivery
// fails.
func TestMaildirBrokenTmp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	for _, sub := range []string{"new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m := openMaildir(t, dir)
	for range 2 {
		if p, _, err := m.Deliver(bytes.NewReader([]byte("x"))); err == nil {
			t.Fatalf("Deliver succeeded: %s", p)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "new")); len(ents) != 0 {
		t.Fatalf("new/ holds %v", ents)
	}
}

// OpenMaildir accepts an existing Maildir and refuses a file in the way.
func TestOpenMaildirExistingAndBlocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	openMaildir(t, dir)
	m := openMaildir(t, dir)
	if _, _, err := m.Deliver(bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := OpenMaildir(file); err == nil {
		m.Close()
		t.Fatal("OpenMaildir on a file succeeded")
	}
	if m, err := OpenMaildir(filepath.Join(t.TempDir(), "missing", "Mail")); err == nil {
		m.Close()
		t.Fatal("OpenMaildir without its parent succeeded")
	}
}

// A delivery that cannot rename into new/ fails and leaves tmp/ empty;
// once new/ is back, the next delivery finds it.
func TestMaildirNewRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m := openMaildir(t, dir)
	if _, _, err := m.Deliver(bytes.NewReader([]byte("a"))); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	if p, _, err := m.Deliver(bytes.NewReader([]byte("b"))); err == nil {
		t.Fatalf("Deliver without new/ succeeded: %s", p)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
	if err := os.Mkdir(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	p, _, err := m.Deliver(bytes.NewReader([]byte("c")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "c" {
		t.Fatalf("%s holds %q, %v", p, got, err)
	}
}
