package sqlstate_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

const user, pass = "alice", "alice-secret-password"

// counting is a State that counts the calls that read every record.
type counting struct {
	*sqlstate.State
	records atomic.Int64
}

func (c *counting) Records(ctx context.Context, mailbox string) ([]mailaccess.Record, error) {
	c.records.Add(1)
	return c.State.Records(ctx, mailbox)
}

func dialIMAP(t *testing.T, s *imaptest.Server) *imap.Mailbox {
	t.Helper()
	mb, err := imap.Dial(t.Context(), s.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{
		Auth:      mailaccess.Auth{Username: user, Password: pass},
		TLSConfig: s.ClientTLSConfig(),
		Timeout:   5 * time.Second,
	}})
	if err != nil {
		t.Fatalf("imap.Dial: %v", err)
	}
	return mb
}

func uidFetches(cmds []imaptest.Command) int {
	n := 0
	for _, c := range cmds {
		if c.Name == "UID FETCH" {
			n++
		}
	}
	return n
}

// TestIncrementalKeep: a KeepOnServer Fetcher on the SQL State, against
// the in-process IMAP server. A run with nothing new reads no record in
// full and sends no FETCH, also with a State reopened between runs; new
// mail costs one short listing; mail deleted by another client makes one
// run list everything and prune the State, without delivering anything
// twice.
func TestIncrementalKeep(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		testIncrementalKeep(t, func(t *testing.T) *sqlstate.State { return openSQLite(t, path, nil) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := newPostgres(t)
		testIncrementalKeep(t, func(t *testing.T) *sqlstate.State { return openPostgres(t, dsn, nil) })
	})
}

func testIncrementalKeep(t *testing.T, open func(t *testing.T) *sqlstate.State) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser(user, pass)
	for i := 1; i <= 50; i++ {
		s.Append(user, "INBOX", mailaccesstest.Message(i))
	}
	st := &counting{State: open(t)}
	var got int
	handler := func(ctx context.Context, m *mailaccess.Message) error {
		if _, err := io.Copy(io.Discard, m.Body); err != nil {
			return err
		}
		got++
		return nil
	}
	fetch := func() mailaccess.Report {
		t.Helper()
		f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: st}
		rep, err := f.Fetch(t.Context(), dialIMAP(t, s), handler)
		if err != nil {
			t.Fatalf("Fetch: %+v, %v", rep, err)
		}
		return rep
	}
	rep := fetch()
	if rep.Delivered != 50 {
		t.Fatalf("first run: %+v", rep)
	}
	mark, _ := st.Mark(t.Context(), rep.Mailbox)
	epoch, _, ok := strings.Cut(string(mark), "/") // IMAP UIDs are UIDVALIDITY/UID
	if !ok {
		t.Fatalf("mark after the first run: %q", mark)
	}
	if total, in, err := st.Count(t.Context(), rep.Mailbox, epoch); err != nil || total != 50 || in != 50 {
		t.Fatalf("Count after the first run: %d, %d, %v", total, in, err)
	}

	// Nothing new, with the State reopened: no record read in full, no
	// FETCH.
	st.Close()
	st = &counting{State: open(t)}
	before := uidFetches(s.Commands())
	rep = fetch()
	if rep.Delivered != 0 || rep.Skipped != 50 || rep.Listed != 50 {
		t.Fatalf("run with nothing new: %+v", rep)
	}
	if n := uidFetches(s.Commands()) - before; n != 0 {
		t.Fatalf("a run with nothing new sent %d UID FETCH", n)
	}
	if n := st.records.Load(); n != 0 {
		t.Fatalf("a run with nothing new read every record %d times", n)
	}

	// New mail: delivered, and only it.
	s.Append(user, "INBOX", mailaccesstest.Message(51))
	if rep = fetch(); rep.Delivered != 1 || rep.Skipped != 50 {
		t.Fatalf("run with new mail: %+v", rep)
	}
	if n := st.records.Load(); n != 0 {
		t.Fatalf("a run with one new message read every record %d times", n)
	}

	// Another client deletes two messages: one whole listing, nothing
	// delivered again, the State forgets the two.
	other := dialIMAP(t, s)
	list, err := other.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other.Delete(t.Context(), list[0].UID, list[1].UID)
	if err := other.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rep = fetch(); rep.Delivered != 0 || rep.Skipped != 49 {
		t.Fatalf("run after deletions elsewhere: %+v", rep)
	}
	if recs, err := st.Records(t.Context(), rep.Mailbox); err != nil || len(recs) != 49 {
		t.Fatalf("State holds %d records (%v), want 49", len(recs), err)
	}
	reads := st.records.Load()
	before = uidFetches(s.Commands())
	if rep = fetch(); rep.Delivered != 0 || uidFetches(s.Commands()) != before || st.records.Load() != reads {
		t.Fatalf("incremental again: %+v", rep)
	}
	if got != 51 {
		t.Fatalf("delivered %d in all, want 51", got)
	}
}
