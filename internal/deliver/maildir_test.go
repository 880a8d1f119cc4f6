package deliver

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-maildir"
)

func TestMaildirDeliver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m, err := OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
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
	m, err := OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Deliver(io.MultiReader(&failingReader{n: 5})); err == nil {
		t.Fatal("Deliver succeeded on a failing reader")
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
			t.Fatalf("%s/ holds %d files after a failed delivery", sub, len(ents))
		}
	}
}
