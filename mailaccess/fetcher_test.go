package mailaccess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

const user, pass = "alice", "alice-secret-password"

func msgs(n int) [][]byte {
	var out [][]byte
	for i := 1; i <= n; i++ {
		out = append(out, mailaccesstest.Message(i))
	}
	return out
}

func popServer(t *testing.T, cfg *poptest.Config, n int) *poptest.Server {
	s := poptest.NewTLSServer(t, cfg)
	s.AddUser(user, pass)
	for _, m := range msgs(n) {
		s.AddMessage(user, m)
	}
	return s
}

func dialPOP(t *testing.T, s *poptest.Server) *pop.Mailbox {
	t.Helper()
	mb, err := pop.Dial(t.Context(), s.Addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: pass}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatalf("pop.Dial: %v", err)
	}
	return mb
}

func imapServer(t *testing.T, cfg *imaptest.Config, n int) *imaptest.Server {
	s := imaptest.NewTLSServer(t, cfg)
	s.AddUser(user, pass)
	for _, m := range msgs(n) {
		s.Append(user, "INBOX", m)
	}
	return s
}

func dialIMAP(t *testing.T, s *imaptest.Server) *imap.Mailbox {
	t.Helper()
	mb, err := imap.Dial(t.Context(), s.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: pass}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatalf("imap.Dial: %v", err)
	}
	return mb
}

type sink struct{ got [][]byte }

func (s *sink) handle(ctx context.Context, m *mailaccess.Message) error {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	s.got = append(s.got, b)
	return nil
}

func countCommands(cmds []poptest.Command, name string) int {
	n := 0
	for _, c := range cmds {
		if c.Name == name {
			n++
		}
	}
	return n
}

// A QUIT answered -ERR commits nothing; the state already says
// "delivered", so the next run deletes without delivering again.
func TestPOP3QuitRefused(t *testing.T) {
	refuse := true
	s := popServer(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "QUIT" && refuse {
			return poptest.Fault{Err: "[SYS/TEMP] could not delete"}
		}
		return poptest.Fault{}
	}}, 3)
	st := &mailaccess.MemoryState{}
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st}
	out := &sink{}
	rep, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle)
	if !errors.Is(err, mailaccess.ErrCommitFailed) || rep.Pending != 3 || rep.Deleted != 0 || rep.Delivered != 3 {
		t.Fatalf("refused QUIT: %+v, %v", rep, err)
	}
	if n := len(s.Messages(user)); n != 3 {
		t.Fatalf("server holds %d after a refused QUIT, want 3", n)
	}
	refuse = false
	rep, err = f.Fetch(t.Context(), dialPOP(t, s), out.handle)
	if err != nil || rep.Delivered != 0 || rep.Deleted != 3 {
		t.Fatalf("rerun: %+v, %v; want 3 deleted, none delivered again", rep, err)
	}
	if len(out.got) != 3 || len(s.Messages(user)) != 0 {
		t.Fatalf("delivered %d, server holds %d", len(out.got), len(s.Messages(user)))
	}
}

// The server commits but the connection drops before +OK: unknown.
func TestPOP3QuitUnknown(t *testing.T) {
	s := popServer(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "QUIT" && c.Conn == 1 {
			return poptest.Fault{DropAfterExec: true}
		}
		return poptest.Fault{}
	}}, 2)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	out := &sink{}
	rep, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle)
	if !errors.Is(err, mailaccess.ErrCommitUnknown) || rep.Pending != 2 {
		t.Fatalf("dropped QUIT: %+v, %v", rep, err)
	}
	rep, err = f.Fetch(t.Context(), dialPOP(t, s), out.handle)
	if err != nil || rep.Listed != 0 || len(out.got) != 2 {
		t.Fatalf("rerun: %+v, %v, delivered %d", rep, err, len(out.got))
	}
}

// EXPIRE 0 means the server deletes what is retrieved: keeping is refused
// before anything is fetched.
func TestPOP3Expire0RefusesKeep(t *testing.T) {
	s := popServer(t, &poptest.Config{Expire: "0"}, 2)
	for _, ret := range []mailaccess.Retention{mailaccess.KeepOnServer, mailaccess.KeepFor(time.Hour)} {
		_, err := (&mailaccess.Fetcher{Retention: ret, State: &mailaccess.MemoryState{}}).Fetch(t.Context(), dialPOP(t, s), (&sink{}).handle)
		if !errors.Is(err, mailaccess.ErrUnsupported) {
			t.Fatalf("%s on EXPIRE 0: %v, want ErrUnsupported", ret, err)
		}
	}
	if n := countCommands(s.Commands(), "RETR"); n != 0 {
		t.Fatalf("%d RETR sent before refusing", n)
	}
	if n := len(s.Messages(user)); n != 2 {
		t.Fatalf("server holds %d, want 2", n)
	}
	// Deleting is what the server does anyway: allowed.
	rep, err := (&mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch}).Fetch(t.Context(), dialPOP(t, s), (&sink{}).handle)
	if err != nil || rep.Delivered != 2 {
		t.Fatalf("delete on EXPIRE 0: %+v, %v", rep, err)
	}
}

func TestMoveOnPOP3IsUnsupported(t *testing.T) {
	s := popServer(t, nil, 1)
	_, err := (&mailaccess.Fetcher{Retention: mailaccess.MoveTo("Archive")}).Fetch(t.Context(), dialPOP(t, s), (&sink{}).handle)
	if !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("MoveTo on POP3: %v", err)
	}
	if n := countCommands(s.Commands(), "RETR"); n != 0 {
		t.Fatalf("%d RETR sent", n)
	}
}

// Without UIDL only DeleteAfterFetch works; after a failed QUIT the next
// run recognises the messages by fingerprint and does not deliver them
// again.
func TestPOP3WithoutUIDL(t *testing.T) {
	refuse := true
	s := popServer(t, &poptest.Config{NoUIDL: true, Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "QUIT" && refuse {
			return poptest.Fault{Err: "no"}
		}
		return poptest.Fault{}
	}}, 2)
	st := &mailaccess.MemoryState{}
	_, err := (&mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: st}).Fetch(t.Context(), dialPOP(t, s), (&sink{}).handle)
	if !errors.Is(err, mailaccess.ErrUnsupported) {
		t.Fatalf("keep without UIDL: %v", err)
	}
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st}
	out := &sink{}
	if _, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle); !errors.Is(err, mailaccess.ErrCommitFailed) {
		t.Fatalf("first run: %v", err)
	}
	refuse = false
	s.AddMessage(user, mailaccesstest.Message(3))
	rep, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle)
	if err != nil || rep.Delivered != 1 || rep.Recognized != 2 || rep.Deleted != 3 {
		t.Fatalf("rerun: %+v, %v", rep, err)
	}
	if len(out.got) != 3 || !bytes.Equal(out.got[2], mailaccesstest.Message(3)) {
		t.Fatalf("delivered %d messages", len(out.got))
	}
}

// IMAP: NO to UID EXPUNGE is a failed commit; the rerun deletes.
func TestIMAPExpungeRefused(t *testing.T) {
	refuse := true
	s := imapServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID EXPUNGE" && refuse {
			return imaptest.Fault{No: "[UNAVAILABLE] try later"}
		}
		return imaptest.Fault{}
	}}, 2)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	out := &sink{}
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if !errors.Is(err, mailaccess.ErrCommitFailed) || rep.Pending != 2 {
		t.Fatalf("refused expunge: %+v, %v", rep, err)
	}
	refuse = false
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 0 || rep.Deleted != 2 || len(s.Messages(user, "INBOX")) != 0 {
		t.Fatalf("rerun: %+v, %v", rep, err)
	}
	for _, c := range s.Commands() {
		if c.Name == "EXPUNGE" || c.Name == "CLOSE" {
			t.Fatalf("a mailbox-wide %s was sent", c.Name)
		}
	}
}

// A message expunged by another client between List and Open is reported
// as vanished, not an error of the run.
func TestVanished(t *testing.T) {
	s := imapServer(t, nil, 3)
	out := &sink{}
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	f.Progress = func(p mailaccess.Progress) {
		if p.DoneMessages != 0 {
			return
		}
		// Listed, nothing fetched yet: another client expunges message 2.
		ctx := t.Context()
		other := dialIMAP(t, s)
		list, err := other.List(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		other.Delete(ctx, list[1].UID)
		if err := other.Close(ctx); err != nil {
			t.Error(err)
		}
	}
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Vanished != 1 || rep.Delivered != 2 {
		t.Fatalf("vanished: %+v, %v", rep, err)
	}
}

// failingState fails every Put after the first n.
type failingState struct {
	mailaccess.MemoryState
	n int
}

func (s *failingState) Put(ctx context.Context, mb string, recs ...mailaccess.Record) error {
	if s.n == 0 {
		return errors.New("disk full")
	}
	s.n--
	return s.MemoryState.Put(ctx, mb, recs...)
}

// A state that cannot record stops the run; only recorded messages are
// deleted: with groups of one message, the first; with groups of two, the
// first group.
func TestStateFailureStopsBeforeDeleting(t *testing.T) {
	for _, c := range []struct{ group, msgs, deleted int }{{1, 3, 1}, {2, 5, 2}} {
		t.Run(fmt.Sprintf("group=%d", c.group), func(t *testing.T) {
			s := popServer(t, nil, c.msgs)
			st := &failingState{n: 1}
			out := &sink{}
			f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st, Batch: mailaccess.Batch{Messages: c.group}}
			rep, err := f.Fetch(t.Context(), dialPOP(t, s), out.handle)
			if !errors.Is(err, mailaccess.ErrState) {
				t.Fatalf("state failure: %+v, %v", rep, err)
			}
			if rep.Deleted != c.deleted || len(s.Messages(user)) != c.msgs-c.deleted || rep.Delivered != c.deleted {
				t.Fatalf("delivered %d, deleted %d, server holds %d; want only the recorded messages (%d) deleted", rep.Delivered, rep.Deleted, len(s.Messages(user)), c.deleted)
			}
		})
	}
}

// A handler that panics aborts the session: nothing is committed.
func TestHandlerPanicCommitsNothing(t *testing.T) {
	s := popServer(t, nil, 2)
	n := 0
	h := func(ctx context.Context, m *mailaccess.Message) error {
		n++
		if n == 2 {
			panic("handler bug")
		}
		io.Copy(io.Discard, m.Body)
		return nil
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		(&mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}).Fetch(t.Context(), dialPOP(t, s), h)
	}()
	if n := len(s.Messages(user)); n != 2 {
		t.Fatalf("server holds %d after a panic, want 2", n)
	}
}

// Cancelling the context stops the run at once and commits nothing.
func TestCancelStopsTheRun(t *testing.T) {
	s := imapServer(t, nil, 5)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	h := func(ctx context.Context, m *mailaccess.Message) error {
		n++
		if n == 2 {
			cancel()
			return ctx.Err()
		}
		_, err := io.Copy(io.Discard, m.Body)
		return err
	}
	rep, err := (&mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}).Fetch(ctx, dialIMAP(t, s), h)
	if !errors.Is(err, context.Canceled) || rep.Delivered != 1 {
		t.Fatalf("cancelled run: %+v, %v", rep, err)
	}
	if n := len(s.Messages(user, "INBOX")); n != 5 {
		t.Fatalf("server holds %d, want 5 (nothing committed)", n)
	}
}

func TestMessageParse(t *testing.T) {
	s := imapServer(t, nil, 0)
	s.Append(user, "INBOX", []byte("Subject: =?iso-8859-1?q?caf=E9?=\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nbody\r\n"))
	s.Append(user, "INBOX", []byte("no colon here\r\n\r\nbody\r\n"))
	var subjects []string
	var perr []error
	h := func(ctx context.Context, m *mailaccess.Message) error {
		r, err := m.Parse()
		if err != nil {
			perr = append(perr, err)
			return nil
		}
		s, _ := r.Header.Subject()
		subjects = append(subjects, s)
		return nil
	}
	rep, err := (&mailaccess.Fetcher{}).Fetch(t.Context(), dialIMAP(t, s), h)
	if err != nil || rep.Delivered != 2 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if len(subjects) != 1 || subjects[0] != "café" || len(perr) != 1 {
		t.Fatalf("subjects %q, parse errors %v", subjects, perr)
	}
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

// With KeepOnServer on IMAP, a run with nothing new lists nothing: the
// State's mark and UIDNEXT say so, and it reads no record in full. New
// mail costs one short listing; messages deleted by another client are
// noticed by the count and the State is pruned.
func TestIncrementalKeep(t *testing.T) {
	st := &countingState{MemoryState: &mailaccess.MemoryState{}}
	testIncrementalKeep(t, st, st, true)
}

// countingState counts the calls of Records.
type countingState struct {
	*mailaccess.MemoryState
	records atomic.Int64
}

func (c *countingState) Records(ctx context.Context, mailbox string) ([]mailaccess.Record, error) {
	c.records.Add(1)
	return c.MemoryState.Records(ctx, mailbox)
}

func testIncrementalKeep(t *testing.T, st *countingState, state mailaccess.IncrementalState, indexed bool) {
	s := imapServer(t, nil, 50)
	f := &mailaccess.Fetcher{State: state}
	out := &sink{}
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 50 {
		t.Fatalf("first run: %+v, %v", rep, err)
	}
	if mark, _ := st.Mark(t.Context(), rep.Mailbox); mark == "" {
		t.Fatal("no mark after the first run")
	}
	before := uidFetches(s.Commands())
	reads := st.records.Load()
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 0 || rep.Skipped != 50 || rep.Listed != 50 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
	if n := uidFetches(s.Commands()) - before; n != 0 {
		t.Fatalf("a run with nothing new sent %d UID FETCH: %v", n, s.Commands())
	}
	if n := st.records.Load() - reads; (n == 0) != indexed {
		t.Fatalf("a run with nothing new read every record %d times (IncrementalState: %v)", n, indexed)
	}
	s.Append(user, "INBOX", mailaccesstest.Message(51))
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 1 || rep.Skipped != 50 {
		t.Fatalf("run with new mail: %+v, %v", rep, err)
	}
	// Another client deletes two messages: the count disagrees, the run
	// lists everything once, nothing is delivered again, and the State
	// forgets the two.
	other := dialIMAP(t, s)
	list, _ := other.List(t.Context())
	other.Delete(t.Context(), list[0].UID, list[1].UID)
	if err := other.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 0 || rep.Skipped != 49 {
		t.Fatalf("run after deletions elsewhere: %+v, %v", rep, err)
	}
	recs, _ := st.Records(t.Context(), rep.Mailbox)
	if len(recs) != 49 {
		t.Fatalf("State holds %d records, want 49", len(recs))
	}
	before = uidFetches(s.Commands())
	rep, err = f.Fetch(t.Context(), dialIMAP(t, s), out.handle)
	if err != nil || rep.Delivered != 0 || uidFetches(s.Commands()) != before {
		t.Fatalf("incremental again: %+v, %v", rep, err)
	}
	if len(out.got) != 51 {
		t.Fatalf("delivered %d in all, want 51", len(out.got))
	}
}

// KeepFor with the incremental listing still deletes old messages that
// the listing no longer shows.
func TestIncrementalKeepFor(t *testing.T) {
	s := imapServer(t, nil, 3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepFor(24 * time.Hour), State: &mailaccess.MemoryState{}, Now: func() time.Time { return now }}
	out := &sink{}
	if rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle); err != nil || rep.Delivered != 3 {
		t.Fatalf("day 0: %+v, %v", rep, err)
	}
	now = now.Add(12 * time.Hour)
	s.Append(user, "INBOX", mailaccesstest.Message(4))
	if rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle); err != nil || rep.Delivered != 1 || rep.Deleted != 0 {
		t.Fatalf("12h: %+v, %v", rep, err)
	}
	now = now.Add(13 * time.Hour)
	if rep, err := f.Fetch(t.Context(), dialIMAP(t, s), out.handle); err != nil || rep.Deleted != 3 {
		t.Fatalf("25h: %+v, %v", rep, err)
	}
	if got := s.Messages(user, "INBOX"); len(got) != 1 || !bytes.Equal(got[0], mailaccesstest.Message(4)) {
		t.Fatalf("server holds %d", len(got))
	}
}

// The Fetcher's per-message events carry the message's UID and size, and
// a handler that wants only warnings gets only the refusal.
func TestFetcherLogsMessages(t *testing.T) {
	s := imapServer(t, nil, 2)
	var info, warn bytes.Buffer
	for _, c := range []struct {
		buf   *bytes.Buffer
		level slog.Level
	}{{&info, slog.LevelInfo}, {&warn, slog.LevelWarn}} {
		f := &mailaccess.Fetcher{Logger: slog.New(slog.NewJSONHandler(c.buf, &slog.HandlerOptions{Level: c.level}))}
		n := 0
		f.Fetch(t.Context(), dialIMAP(t, s), func(ctx context.Context, m *mailaccess.Message) error {
			if n++; n == 2 {
				return errors.New("refused")
			}
			_, err := io.Copy(io.Discard, m.Body)
			return err
		})
	}
	type rec struct {
		Msg  string `json:"msg"`
		UID  string `json:"uid"`
		Size int64  `json:"size"`
	}
	parse := func(b *bytes.Buffer) map[string]rec {
		out := map[string]rec{}
		for l := range bytes.Lines(b.Bytes()) {
			var r rec
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatal(err)
			}
			out[r.Msg] = r
		}
		return out
	}
	got := parse(&info)
	if r, ok := got["delivered"]; !ok || r.UID == "" || r.Size <= 0 {
		t.Fatalf("no delivered event with a UID and size: %s", info.String())
	}
	if r, ok := got["handler refused the message; it stays on the server"]; !ok || r.UID == "" {
		t.Fatalf("no refusal event with a UID: %s", info.String())
	}
	got = parse(&warn)
	if _, ok := got["delivered"]; ok || len(got) != 1 {
		t.Fatalf("at Warn: %s", warn.String())
	}
}
