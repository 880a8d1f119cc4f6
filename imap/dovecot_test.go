package imap_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// TestDovecotBatchAndNUL runs the batched fetch against Dovecot, with
// messages that hold NUL octets, which IMAP cannot carry (RFC 3501
// section 4.3): the driver delivers what the server sends, which for
// Dovecot is 0x80 in place of each NUL.
func TestDovecotBatchAndNUL(t *testing.T) {
	srv := dovecottest.Start(t, nil)
	raws := make([][]byte, 300)
	for i := range raws {
		raws[i] = message(i, 500+i*37)
	}
	nul := []byte("Subject: nul\r\n\r\nbefore\x00after\r\n")
	raws[150] = nul
	srv.Seed(t, dovecotUser, "INBOX", raws)
	o := dovecotOptions(srv)
	o.ChunkSize = 10000 // the larger messages in chunks
	mb, err := imap.Dial(t.Context(), srv.IMAPSAddr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	list, err := mb.List(t.Context())
	if err != nil || len(list) != len(raws) {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		got := readAll(t, mb, info.UID)
		want := raws[i]
		if i == 150 {
			want = bytes.ReplaceAll(nul, []byte{0}, []byte{0x80})
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: got %q, want %q", i, got[:min(len(got), 80)], want[:min(len(want), 80)])
		}
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestDovecotBatchVanished expunges messages from another session after
// List, the last of a window among them: their Open is ErrNotFound, the
// others come through byte-exact.
func TestDovecotBatchVanished(t *testing.T) {
	srv := dovecottest.Start(t, nil)
	raws := make([][]byte, 1200)
	for i := range raws {
		raws[i] = message(i, 300)
	}
	srv.Seed(t, dovecotUser, "INBOX", raws)
	o := dovecotOptions(srv)
	tr := &syncBuffer{}
	o.Trace = tr
	defer func() {
		if t.Failed() {
			l := tr.String()
			t.Log(l[max(0, len(l)-3000):])
		}
	}()
	mb, err := imap.Dial(t.Context(), srv.IMAPSAddr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gone := map[int]bool{0: true, 5: true, 999: true, 1000: true, 1199: true}
	other, err := imap.Dial(t.Context(), srv.IMAPSAddr, dovecotOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	for i := range gone {
		if err := other.Delete(t.Context(), list[i].UID); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids(list)...)
	for i, info := range list {
		r, err := mb.Open(t.Context(), info.UID)
		if gone[i] {
			if !errors.Is(err, mailaccess.ErrNotFound) {
				t.Fatalf("Open of expunged message %d = %v, want ErrNotFound", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(b, raws[i]) {
			t.Fatalf("message %d: %v, byte-exact %v", i, err, bytes.Equal(b, raws[i]))
		}
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestDovecotListAfterNothingNew counts the commands of a whole
// no-new-mail session (Dial, ListAfter, Close) on a folder of 10 and of
// 3000 messages: they are the same, and none is a FETCH.
func TestDovecotListAfterNothingNew(t *testing.T) {
	srv := dovecottest.Start(t, nil)
	var counts []int
	for _, n := range []int{10, 3000} {
		raws := make([][]byte, n)
		for i := range raws {
			raws[i] = message(i, 100)
		}
		srv.Seed(t, dovecotUser, "INBOX", raws)
		o := dovecotOptions(srv)
		tr := &syncBuffer{}
		o.Trace = tr
		mb, err := imap.Dial(t.Context(), srv.IMAPSAddr, o)
		if err != nil {
			t.Fatal(err)
		}
		if mb.Count() != n {
			t.Fatalf("Count = %d, want %d", mb.Count(), n)
		}
		last := mailaccess.UID(mb.Describe().UIDEpoch + "/" + itoa(n))
		list, err := mb.ListAfter(t.Context(), last)
		if err != nil || len(list) != 0 {
			t.Fatalf("ListAfter = %d, %v", len(list), err)
		}
		if err := mb.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, l := range strings.Split(tr.String(), "\n") {
			if c, ok := strings.CutPrefix(l, "C: "); ok {
				cmds = append(cmds, c)
				if strings.Contains(c, "FETCH") {
					t.Fatalf("a FETCH was sent: %s", c)
				}
			}
		}
		counts = append(counts, len(cmds))
		t.Logf("%d messages: %d commands: %q", n, len(cmds), cmds)
	}
	if counts[0] != counts[1] {
		t.Fatalf("commands: %d for 10 messages, %d for 3000", counts[0], counts[1])
	}
}

// TestDovecotListDates: Dovecot's INTERNALDATE (the file's time, which the
// harness does not set, so about now) fills MessageInfo.Date only with
// Options.ListDates.
func TestDovecotListDates(t *testing.T) {
	srv := dovecottest.Start(t, nil)
	srv.Seed(t, dovecotUser, "INBOX", [][]byte{message(1, 300), message(2, 300)})
	for _, on := range []bool{false, true} {
		o := dovecotOptions(srv)
		o.ListDates = on
		mb, err := imap.Dial(t.Context(), srv.IMAPSAddr, o)
		if err != nil {
			t.Fatal(err)
		}
		list, err := mb.List(t.Context())
		mb.Abort()
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %v, %v", list, err)
		}
		for _, info := range list {
			if recent := time.Since(info.Date) < time.Hour; recent != on || (!on && !info.Date.IsZero()) {
				t.Fatalf("ListDates %v: Date %v", on, info.Date)
			}
		}
	}
}
