package imap_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

func TestListAfterNothingNewSendsNoFetch(t *testing.T) {
	var counts []int
	for _, n := range []int{10, 5000} {
		s := newServer(t, nil)
		raws := make([][]byte, n)
		for i := range raws {
			raws[i] = []byte("Subject: " + strings.Repeat("x", i%7) + "\r\n\r\nbody\r\n")
		}
		s.SetMessages(user, "INBOX", raws)
		mb := dial(t, s, nil)
		if got := mb.Count(); got != n {
			t.Fatalf("Count = %d, want %d", got, n)
		}
		last := mailaccess.UID(mb.Describe().UIDEpoch + "/" + itoa(n))
		before := len(s.Commands())
		list, err := mb.ListAfter(t.Context(), last)
		if err != nil || len(list) != 0 {
			t.Fatalf("ListAfter(last) = %v, %v", list, err)
		}
		if err := mb.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		cmds := names(s)
		if slices.Contains(cmds[before:], "UID FETCH") {
			t.Fatalf("ListAfter with nothing new sent a FETCH: %v", cmds)
		}
		counts = append(counts, len(cmds))
	}
	if counts[0] != counts[1] {
		t.Fatalf("commands for a no-new-mail session: %d with 10 messages, %d with 5000", counts[0], counts[1])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestListAfter(t *testing.T) {
	s := newServer(t, nil)
	for i := range 5 {
		s.Append(user, "INBOX", message(i, 300))
	}
	mb := dial(t, s, nil)
	all, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// New mail after the last one listed, seen by a session that has
	// run a command since (the EXISTS comes with its answer).
	s.Append(user, "INBOX", message(5, 300))
	s.Append(user, "INBOX", message(6, 300))
	if _, err := mb.Folders(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := mb.ListAfter(t.Context(), all[4].UID)
	if err != nil || len(got) != 2 {
		t.Fatalf("ListAfter = %v, %v; want the 2 new messages", got, err)
	}
	if got[0].Size < 300 || !got[1].Date.IsZero() {
		t.Fatalf("ListAfter infos = %+v; want sizes and no dates (ListDates is off)", got)
	}
	// The new messages can be opened, batched.
	mb.WillOpen(uids(got)...)
	for i, info := range got {
		if b := readAll(t, mb, info.UID); string(b) != string(message(5+i, 300)) {
			t.Fatalf("message %d not byte-exact", 5+i)
		}
	}
	// From the middle.
	mid, err := mb.ListAfter(t.Context(), all[2].UID)
	if err != nil || len(mid) != 4 || mid[0].UID != all[3].UID {
		t.Fatalf("ListAfter(middle) = %v, %v", uids(mid), err)
	}
	// After the last: "n:*" gives the last message, which is dropped.
	last := got[1].UID
	s2 := dial(t, s, nil)
	none, err := s2.ListAfter(t.Context(), last)
	if err != nil || len(none) != 0 {
		t.Fatalf("ListAfter(last) = %v, %v", uids(none), err)
	}
	// Another epoch, or none: everything.
	for _, after := range []mailaccess.UID{"", "999/3"} {
		every, err := mb.ListAfter(t.Context(), after)
		if err != nil || len(every) != 7 {
			t.Fatalf("ListAfter(%q) = %d messages, %v; want 7", after, len(every), err)
		}
	}
	if _, err := mb.ListAfter(t.Context(), "junk"); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Fatalf("ListAfter(junk) = %v, want ErrInvalidArgument", err)
	}
}

// TestListAfterStaleUIDNext checks that a FETCH is sent when the server
// reported new mail after SELECT, even though SELECT's UIDNEXT says
// nothing is new.
func TestListAfterStaleUIDNext(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message(1, 100))
	mb := dial(t, s, nil)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Append(user, "INBOX", message(2, 100))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := mb.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := mb.ListAfter(t.Context(), list[0].UID)
	if err != nil || len(got) != 1 {
		t.Fatalf("ListAfter = %v, %v", uids(got), err)
	}
	if mb.Count() != 2 {
		t.Fatalf("Count = %d, want 2", mb.Count())
	}
}

// BenchmarkListAfterDovecot times a whole no-new-mail session on a folder
// of 100,000 messages: Dial, ListAfter with the last UID, Close. Run it
// with:
//
//	go test ./imap -run '^$' -bench ListAfterDovecot -benchtime 20x
func BenchmarkListAfterDovecot(b *testing.B) {
	srv := dovecottest.Start(b, nil)
	raws := make([][]byte, 100000)
	for i := range raws {
		raws[i] = []byte("Subject: m\r\nMessage-ID: <" + itoa(i) + "@x>\r\n\r\nbody\r\n")
	}
	srv.Seed(b, dovecotUser, "INBOX", raws)
	o := dovecotOptions(srv)
	session := func() {
		mb, err := imap.Dial(context.Background(), srv.IMAPSAddr, o)
		if err != nil {
			b.Fatal(err)
		}
		last := mailaccess.UID(mb.Describe().UIDEpoch + "/" + itoa(mb.Count()))
		list, err := mb.ListAfter(context.Background(), last)
		if err != nil || len(list) != 0 {
			b.Fatalf("ListAfter = %d, %v", len(list), err)
		}
		if err := mb.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	// Dovecot builds its index of the 100,000 files on the first SELECT,
	// and may scan the Maildir again on the next one, which takes long on
	// a busy machine: sessions run until one is quick (at most five).
	o.Timeout = 5 * time.Minute
	for i := range 5 {
		t0 := time.Now()
		session()
		d := time.Since(t0)
		b.Logf("warm-up session %d: %v", i, d)
		if d < time.Second {
			break
		}
	}
	var ts []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		session()
		ts = append(ts, time.Since(t0))
	}
	b.ReportMetric(float64(quantile(ts, 0.5).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(quantile(ts, 0).Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(quantile(ts, 0.9).Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(quantile(ts, 1).Microseconds())/1000, "max-ms")
}
