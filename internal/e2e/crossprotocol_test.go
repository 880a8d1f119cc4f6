package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

var (
	popS  = ways[0]
	imapS = ways[2]
)

func dialT(t *testing.T, d *dovecottest.Server, w way, folder string) mailaccess.Mailbox {
	t.Helper()
	mb, err := dialWay(t.Context(), d, w, w.addr(d), folder)
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", w.name, err, d.Log())
	}
	return mb
}

func fetchAll(t *testing.T, d *dovecottest.Server, w way, f *mailaccess.Fetcher) ([][]byte, mailaccess.Report) {
	t.Helper()
	var got [][]byte
	rep, err := f.Fetch(t.Context(), dialT(t, d, w, "INBOX"), func(ctx context.Context, m *mailaccess.Message) error {
		b, err := io.ReadAll(m.Body)
		got = append(got, b)
		return err
	})
	if err != nil {
		t.Fatalf("Fetch over %s: %v", w.name, err)
	}
	return got, rep
}

// The same mailbox read over POP3 and over IMAP gives the same messages
// with the same bytes, in the same order.
func TestSameBytesOverBothProtocols(t *testing.T) {
	d := dovecottest.Start(t, nil)
	msgs := append(mailaccesstest.Sample(), mailaccesstest.Message(5), mailaccesstest.Message(6))
	d.Seed(t, user, "INBOX", msgs)
	viaPOP, _ := fetchAll(t, d, popS, &mailaccess.Fetcher{})
	viaIMAP, _ := fetchAll(t, d, imapS, &mailaccess.Fetcher{})
	for i := range msgs {
		if !bytes.Equal(viaPOP[i], msgs[i]) || !bytes.Equal(viaIMAP[i], msgs[i]) {
			t.Fatalf("message %d: POP3 %q, IMAP %q, seeded %q", i, viaPOP[i], viaIMAP[i], msgs[i])
		}
	}
	// The sizes each protocol lists agree too.
	pm, im := dialT(t, d, popS, "INBOX"), dialT(t, d, imapS, "INBOX")
	defer pm.Close(t.Context())
	defer im.Close(t.Context())
	pl, err1 := pm.List(t.Context())
	il, err2 := im.List(t.Context())
	if err1 != nil || err2 != nil || len(pl) != len(il) {
		t.Fatalf("List: %v %v", err1, err2)
	}
	for i := range pl {
		if pl[i].Size != il[i].Size || pl[i].Size != int64(len(msgs[i])) {
			t.Fatalf("message %d: POP3 size %d, IMAP size %d, real %d", i, pl[i].Size, il[i].Size, len(msgs[i]))
		}
	}
}

// A message deleted through one protocol is gone for the other.
func TestDeleteCrossesProtocols(t *testing.T) {
	d := dovecottest.Start(t, nil)
	msgs := [][]byte{mailaccesstest.Message(1), mailaccesstest.Message(2), mailaccesstest.Message(3)}
	d.Seed(t, user, "INBOX", msgs)

	pm := dialT(t, d, popS, "INBOX")
	pl, err := pm.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pm.Delete(t.Context(), pl[0].UID)
	if err := pm.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	im := dialT(t, d, imapS, "INBOX")
	il, err := im.List(t.Context())
	if err != nil || len(il) != 2 {
		t.Fatalf("IMAP after a POP3 delete: %d messages, %v", len(il), err)
	}
	rc, err := im.Open(t.Context(), il[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, msgs[1]) {
		t.Fatalf("IMAP's first message is %q, want message 2", b)
	}
	im.Delete(t.Context(), il[1].UID)
	if err := im.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	pm = dialT(t, d, popS, "INBOX")
	pl, err = pm.List(t.Context())
	if err != nil || len(pl) != 1 {
		t.Fatalf("POP3 after an IMAP delete: %d messages, %v", len(pl), err)
	}
	pm.Close(t.Context())
	if got := d.Messages(t, user, "INBOX"); len(got) != 1 || !bytes.Equal(got[0], msgs[1]) {
		t.Fatalf("Maildir holds %d messages", len(got))
	}
}

// KeepFor on the real server, over both protocols: kept until the period
// has passed since the first delivery, then deleted.
func TestKeepForOnDovecot(t *testing.T) {
	for _, w := range []way{popS, imapS} {
		t.Run(w.name, func(t *testing.T) {
			d := dovecottest.Start(t, nil)
			d.Seed(t, user, "INBOX", [][]byte{mailaccesstest.Message(1), mailaccesstest.Message(2)})
			now := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
			f := &mailaccess.Fetcher{Retention: mailaccess.KeepFor(72 * time.Hour), State: &mailaccess.MemoryState{}, Now: func() time.Time { return now }}
			if _, rep := fetchAll(t, d, w, f); rep.Delivered != 2 || rep.Deleted != 0 {
				t.Fatalf("day 0: %+v", rep)
			}
			d.Append(t, user, "INBOX", mailaccesstest.Message(3))
			now = now.Add(48 * time.Hour)
			if _, rep := fetchAll(t, d, w, f); rep.Delivered != 1 || rep.Deleted != 0 {
				t.Fatalf("day 2: %+v", rep)
			}
			now = now.Add(25 * time.Hour)
			if _, rep := fetchAll(t, d, w, f); rep.Delivered != 0 || rep.Deleted != 2 {
				t.Fatalf("day 3: %+v", rep)
			}
			if got := d.Messages(t, user, "INBOX"); len(got) != 1 || !bytes.Equal(got[0], mailaccesstest.Message(3)) {
				t.Fatalf("server holds %d messages, want message 3 only", len(got))
			}
		})
	}
}

// MoveTo on the real server moves to the folder (created if missing) and
// the POP3 view of INBOX follows; on POP3 it is refused before anything is
// fetched.
func TestMoveToOnDovecot(t *testing.T) {
	d := dovecottest.Start(t, nil)
	msgs := [][]byte{mailaccesstest.Message(1), mailaccesstest.Message(2)}
	d.Seed(t, user, "INBOX", msgs)
	_, err := (&mailaccess.Fetcher{Retention: mailaccess.MoveTo("Archive")}).Fetch(t.Context(), dialT(t, d, popS, ""), func(context.Context, *mailaccess.Message) error {
		t.Fatal("handler called")
		return nil
	})
	if !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("MoveTo over POP3: %v", err)
	}
	got, rep := fetchAll(t, d, imapS, &mailaccess.Fetcher{Retention: mailaccess.MoveTo("Archive"), State: &mailaccess.MemoryState{}})
	if rep.Moved != 2 || len(got) != 2 {
		t.Fatalf("move: %+v", rep)
	}
	if archived := d.Messages(t, user, "Archive"); !equalSets(archived, msgs) {
		t.Fatalf("Archive holds %d messages", len(archived))
	}
	pm := dialT(t, d, popS, "")
	if pl, err := pm.List(t.Context()); err != nil || len(pl) != 0 {
		t.Fatalf("POP3 INBOX after the move: %d, %v", len(pl), err)
	}
	pm.Close(t.Context())
}

func equalSets(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	h := func(x [][]byte) [][32]byte {
		var out [][32]byte
		for _, m := range x {
			out = append(out, sha256.Sum256(m))
		}
		slices.SortFunc(out, func(p, q [32]byte) int { return bytes.Compare(p[:], q[:]) })
		return out
	}
	return slices.Equal(h(a), h(b))
}
