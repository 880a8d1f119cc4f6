package deliver

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var mboxDate = time.Date(2026, 3, 7, 9, 5, 1, 0, time.FixedZone("X", 3600))

func TestMboxQuotingRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		[]byte("Return-Path: <bounce@example.org>\r\nFrom: Alice <alice@example.com>\r\nSubject: a\r\n\r\nFrom here\r\n>From there\r\n>>From everywhere\r\nFrom\r\n>From:x\r\n From no\r\n"),
		[]byte("From: \"Bob\" <bob@example.com>\r\nSubject: b\r\n\r\nno final line end >From"),
		[]byte("Subject: c\n\nFrom LF only\n\n\nFrom again\n"),
		[]byte("Subject: d\r\n\r\n"),
		[]byte(">From the first line\r\n\r\nbody\r\nFr\r\nFrom"),
	}
	for _, b := range msgs {
		// One byte per read: the quoting must not depend on where reads end.
		n, err := m.Deliver(iotest.OneByteReader(bytes.NewReader(b)), mboxDate)
		if err != nil || n != int64(len(b)) {
			t.Fatalf("Deliver: %d, %v", n, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"From bounce@example.org Sat Mar  7 08:05:01 2026\n",
		"\n>From here\r\n>>From there\r\n>>>From everywhere\r\nFrom\r\n>From:x\r\n From no\r\n\n",
		"\n\nFrom bob@example.com Sat Mar  7 08:05:01 2026\n",
		"no final line end >From\n\nFrom MAILER-DAEMON ",
		"\n>From LF only\n\n\n>From again\n\n",
		"\n>>From the first line\r\n\r\nbody\r\nFr\r\nFrom\n\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("mbox lacks %q:\n%s", want, data)
		}
	}
	got, err := SplitMbox(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("SplitMbox found %d messages, want %d", len(got), len(msgs))
	}
	for i, g := range got {
		want := msgs[i]
		if !bytes.HasSuffix(want, []byte("\n")) {
			want = append(bytes.Clone(want), '\n') // the documented added line end
		}
		if !bytes.Equal(g.Body, want) {
			t.Errorf("message %d: got %q, want %q", i, g.Body, want)
		}
	}
	if got[0].From != "bounce@example.org Sat Mar  7 08:05:01 2026" || !strings.HasPrefix(got[2].From, "MAILER-DAEMON ") {
		t.Errorf("separator lines: %q, %q", got[0].From, got[2].From)
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dotlock left behind: %v", err)
	}
}

func TestMboxOpenChecks(t *testing.T) {
	dir := t.TempDir()
	notMbox := filepath.Join(dir, "notes.txt")
	os.WriteFile(notMbox, []byte("shopping list\n"), 0o600)
	if _, err := OpenMbox(notMbox); err == nil {
		t.Error("OpenMbox accepted a file that is not an mbox")
	}
	if _, err := OpenMbox(dir); err == nil {
		t.Error("OpenMbox accepted a directory")
	}
	// An existing mbox whose last message lacks the empty line: the next
	// message still starts after one.
	old := filepath.Join(dir, "old")
	os.WriteFile(old, []byte("From x Thu Jan  1 00:00:00 1970\nSubject: old\n\nbody"), 0o600)
	m, err := OpenMbox(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deliver(strings.NewReader("Subject: new\r\n\r\nx\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(old)
	got, err := SplitMbox(data)
	if err != nil || len(got) != 2 || string(got[0].Body) != "Subject: old\n\nbody\n" || string(got[1].Body) != "Subject: new\r\n\r\nx\r\n" {
		t.Fatalf("after appending to an unterminated mbox: %q %v", got, err)
	}
}

func TestMboxLockConflict(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	m.LockTimeout = 200 * time.Millisecond
	first := []byte("Subject: one\r\n\r\n1\r\n")
	if _, err := m.Deliver(bytes.NewReader(first), mboxDate); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// Another program holds the flock.
	other, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := tryFlock(other)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		_, err = m.Deliver(strings.NewReader("Subject: two\r\n\r\n2\r\n"), mboxDate)
		if !errors.Is(err, ErrMboxLocked) {
			t.Fatalf("Deliver under another flock: %v, want ErrMboxLocked", err)
		}
		funlock(other)
	}
	other.Close()

	// Another program holds the dotlock.
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = m.Deliver(strings.NewReader("Subject: two\r\n\r\n2\r\n"), mboxDate)
	if !errors.Is(err, ErrMboxLocked) || !strings.Contains(err.Error(), ".lock") {
		t.Fatalf("Deliver under another dotlock: %v, want ErrMboxLocked naming the lock", err)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatal("Deliver removed a dotlock it did not own")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("the mbox changed while locked: %q", after)
	}

	// Released: the delivery goes through.
	os.Remove(path + ".lock")
	if _, err := m.Deliver(strings.NewReader("Subject: two\r\n\r\n2\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if got, _ := SplitMbox(data); len(got) != 2 {
		t.Fatalf("%d messages after the lock was released", len(got))
	}
}

func TestMboxTruncatesOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deliver(strings.NewReader("Subject: kept\r\n\r\nkept\r\n"), mboxDate); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	big := "Subject: big\r\n\r\n" + strings.Repeat("From line that is quoted\r\n", 20000)

	// The connection drops in the middle of the message, after more than
	// one buffer was written to the file.
	broken := io.MultiReader(strings.NewReader(big), iotest.ErrReader(errors.New("connection lost")))
	if _, err := m.Deliver(broken, mboxDate); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Deliver of a broken message: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("partial message left: %d bytes, want %d", len(after), len(before))
	}

	// The disk fails in the middle of the message.
	m.failAfter = 100 << 10
	if _, err := m.Deliver(strings.NewReader(big), mboxDate); err == nil {
		t.Fatal("Deliver succeeded with a failing write")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("partial message left after a write error: %d bytes, want %d", len(after), len(before))
	}
	m.failAfter = 0
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dotlock left behind after a failure: %v", err)
	}

	// And the next delivery is whole.
	if _, err := m.Deliver(strings.NewReader(big), mboxDate); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got, err := SplitMbox(data)
	if err != nil || len(got) != 2 || string(got[1].Body) != big {
		t.Fatalf("after the failures: %d messages, %v", len(got), err)
	}
}

func TestEnvelopeSender(t *testing.T) {
	for _, c := range []struct{ header, want string }{
		{"Return-Path: <a@b.example>\r\nFrom: c@d.example\r\n\r\n", "a@b.example"},
		{"Return-Path: <>\r\nFrom: \"C D\" <c@d.example>\r\n\r\n", "c@d.example"},
		{"From: not an address\r\n\r\n", "MAILER-DAEMON"},
		{"Subject: none\r\n\r\n", "MAILER-DAEMON"},
		{"Return-Path: <a b@c>\r\n\r\n", "MAILER-DAEMON"},
		{"", "MAILER-DAEMON"},
	} {
		if got := envelopeSender([]byte(c.header)); got != c.want {
			t.Errorf("envelopeSender(%q) = %q, want %q", c.header, got, c.want)
		}
	}
}
