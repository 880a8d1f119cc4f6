package mailaccess_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// groupState records the size of every Put.
type groupState struct {
	mailaccess.MemoryState
	puts []int
}

func (s *groupState) Put(ctx context.Context, mb string, recs ...mailaccess.Record) error {
	s.puts = append(s.puts, len(recs))
	return s.MemoryState.Put(ctx, mb, recs...)
}

// Groups end by count, by bytes and at the end of the run; each is
// flushed by the handler's sink before the State records it in one Put,
// and nothing is deleted before.
func TestBatchGroups(t *testing.T) {
	size := int64(len(mailaccesstest.Message(1)))
	for _, c := range []struct {
		name  string
		batch mailaccess.Batch
		puts  []int
	}{
		{"count", mailaccess.Batch{Messages: 4}, []int{4, 4, 2}},
		{"bytes", mailaccess.Batch{Bytes: 3 * size}, []int{3, 3, 3, 1}},
		{"one", mailaccess.Batch{Messages: 1}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"default", mailaccess.Batch{}, []int{10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := popServer(t, nil, 10)
			st := &groupState{}
			var took, flushed int
			var order []string
			f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st, Batch: c.batch,
				Flush: func(ctx context.Context) error {
					flushed = took
					order = append(order, "flush")
					if n := len(s.Messages(user)); n != 10 {
						t.Errorf("the server holds %d messages at a flush; nothing may be deleted before the end", n)
					}
					return nil
				}}
			rep, err := f.Fetch(t.Context(), dialPOP(t, s), func(ctx context.Context, m *mailaccess.Message) error {
				took++
				_, err := readAll(m)
				return err
			})
			if err != nil || rep.Delivered != 10 || rep.Deleted != 10 {
				t.Fatalf("%+v, %v", rep, err)
			}
			if flushed != 10 || len(order) != len(c.puts) {
				t.Fatalf("%d flushes, the last after %d messages; want %d flushes", len(order), flushed, len(c.puts))
			}
			if !equalInts(st.puts, c.puts) {
				t.Fatalf("Put sizes %v, want %v", st.puts, c.puts)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A group ends when its oldest message has waited Delay, so that a slow
// server does not hold back what was already taken.
func TestBatchDelay(t *testing.T) {
	s := popServer(t, nil, 4)
	st := &groupState{}
	f := &mailaccess.Fetcher{State: st, Batch: mailaccess.Batch{Delay: 50 * time.Millisecond}}
	_, err := f.Fetch(t.Context(), dialPOP(t, s), func(ctx context.Context, m *mailaccess.Message) error {
		// A slow handler, or a slow server: the group that the first
		// message opens is due when the second is taken.
		time.Sleep(100 * time.Millisecond)
		_, err := readAll(m)
		return err
	})
	if err != nil || !equalInts(st.puts, []int{2, 2}) {
		t.Fatalf("Put sizes %v, %v; want groups of two", st.puts, err)
	}
}

// A Flush that fails ends the run: the groups before it are committed,
// its group stays on the server (unrecorded) and is delivered by the next
// run; nothing is lost, and the mark does not pass the lost group.
func TestFlushFailure(t *testing.T) {
	bothProtocols(t, 6, func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte) {
		st := &mailaccess.MemoryState{}
		var flushes atomic.Int32
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st, Batch: mailaccess.Batch{Messages: 2},
			Flush: func(ctx context.Context) error {
				if flushes.Add(1) == 2 {
					return errors.New("disk full")
				}
				return nil
			}}
		got := map[string]int{}
		h := func(ctx context.Context, m *mailaccess.Message) error {
			b, err := readAll(m)
			got[string(b)]++
			return err
		}
		rep, err := f.Fetch(t.Context(), dial(), h)
		if !errors.Is(err, mailaccess.ErrHandler) || rep.Delivered != 2 || rep.Deleted != 2 || len(contents()) != 4 {
			t.Fatalf("first run: %+v, %v, %d left", rep, err, len(contents()))
		}
		rep, err = f.Fetch(t.Context(), dial(), h)
		if err != nil || rep.Delivered != 4 || len(contents()) != 0 {
			t.Fatalf("second run: %+v, %v, %d left", rep, err, len(contents()))
		}
		for i := 1; i <= 6; i++ {
			want := 1
			if i == 3 || i == 4 {
				want = 2 // the lost group: taken, not durable, offered again
			}
			if n := got[string(mailaccesstest.Message(i))]; n != want {
				t.Fatalf("message %d delivered %d times, want %d", i, n, want)
			}
		}
	})
}

// Under KeepOnServer with an incremental State, a lost group keeps the
// mark before it, so that the next run lists those messages again.
func TestFlushFailureKeepsTheMark(t *testing.T) {
	s := imapServer(t, nil, 6)
	st := &mailaccess.MemoryState{}
	fail := true
	f := &mailaccess.Fetcher{State: st, Batch: mailaccess.Batch{Messages: 2},
		Flush: func(ctx context.Context) error {
			if n, _ := st.Records(ctx, "imap://alice@127.0.0.1/INBOX"); len(n) == 2 && fail {
				fail = false
				return errors.New("disk full")
			}
			return nil
		}}
	var got [][]byte
	h := func(ctx context.Context, m *mailaccess.Message) error {
		b, err := readAll(m)
		got = append(got, b)
		return err
	}
	if _, err := f.Fetch(t.Context(), dialIMAP(t, s), h); !errors.Is(err, mailaccess.ErrHandler) {
		t.Fatalf("first run: %v", err)
	}
	rep, err := f.Fetch(t.Context(), dialIMAP(t, s), h)
	if err != nil || rep.Delivered != 4 || rep.Skipped != 2 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
	last := got[len(got)-4:]
	for i, b := range last {
		if !bytes.Equal(b, mailaccesstest.Message(3+i)) {
			t.Fatalf("second run delivered message %d out of order", i)
		}
	}
}

// Run does not offer a refused message again until new mail comes: it
// waits in IDLE instead of fetching in a loop, and the next fetch (for
// the new mail) offers the refused one too.
func TestRunRefusalWaitsForNewMail(t *testing.T) {
	s := imapServer(t, nil, 2)
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	var fetches atomic.Int32
	armed := make(chan struct{}, 10)
	refuse := mailaccesstest.Message(1)
	var offered atomic.Int32
	opts := &mailaccess.RunOptions{
		AfterFetch: func(mailaccess.Report, error) { fetches.Add(1) },
		Waiting:    func(string, bool) { armed <- struct{}{} },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- f.Run(ctx, func(ctx context.Context) (mailaccess.Mailbox, error) { return dialIMAP(t, s), nil },
			func(ctx context.Context, m *mailaccess.Message) error {
				b, err := readAll(m)
				if bytes.Equal(b, refuse) {
					offered.Add(1)
					return errors.New("not this one")
				}
				return err
			}, opts)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-armed:
	case <-time.After(5 * time.Second):
		t.Fatal("Run never waited for new mail")
	}
	time.Sleep(300 * time.Millisecond)
	if n := fetches.Load(); n != 1 || offered.Load() != 1 {
		t.Fatalf("%d fetches and %d offers of the refused message while no mail came; want 1 and 1", n, offered.Load())
	}
	s.Append(user, "INBOX", mailaccesstest.Message(3))
	deadline := time.Now().Add(5 * time.Second)
	for offered.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the refused message was not offered again with the new mail")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
