package mailaccesstest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

func testStateReopen(t *testing.T, s mailaccess.State, reopen func(*testing.T, mailaccess.State) mailaccess.State) {
	mbs := oddMailboxes()[:4]
	want := make(map[string][]mailaccess.Record)
	full := fullRecords()
	for i, mb := range mbs {
		for j := range 50 {
			want[mb] = append(want[mb], stateRecord(fmt.Sprintf("%d/%d", i, j), j%4))
		}
		want[mb] = append(want[mb], full...)
		put(t, s, mb, want[mb][:10]...)
		put(t, s, mb, want[mb][10:]...)
	}
	forget(t, s, mbs[0], "0/0", "0/1")
	want[mbs[0]] = want[mbs[0]][2:]
	repl := stateRecord("1/5", 9)
	repl.CopiedTo = "Archive"
	put(t, s, mbs[1], repl)
	want[mbs[1]][5] = repl
	is, incremental := s.(mailaccess.IncrementalState)
	if incremental {
		setMark(t, is, mbs[0], "0/49")
		setMark(t, is, mbs[1], "1/1")
		setMark(t, is, mbs[1], "1/2")
	}
	check := func(s mailaccess.State, when string) {
		t.Helper()
		for _, mb := range mbs {
			sameRecords(t, fmt.Sprintf("Records(%q) %s", mb, when), records(t, s, mb), want[mb])
		}
		if !incremental {
			return
		}
		is := s.(mailaccess.IncrementalState)
		for mb, m := range map[string]mailaccess.UID{mbs[0]: "0/49", mbs[1]: "1/2", mbs[2]: ""} {
			if got := mark(t, is, mb); got != m {
				t.Fatalf("Mark(%q) %s = %q, want %q", mb, when, got, m)
			}
		}
		wantCount(t, is, mbs[1], "1700000001", len(want[mbs[1]]), 12)
		sameRecords(t, "Lookup "+when, lookup(t, is, mbs[1], "1/5", "1/6", "none"), []mailaccess.Record{repl, want[mbs[1]][6]})
	}
	s = reopen(t, s)
	check(s, "after a reopen")
	// The reopened State goes on working, and a second reopen keeps
	// what it stored.
	extra := stateRecord("3/new", 1)
	put(t, s, mbs[3], extra)
	want[mbs[3]] = append(want[mbs[3]], extra)
	s = reopen(t, s)
	check(s, "after a second reopen")
}

func testStateConcurrent(t *testing.T, s mailaccess.State) {
	const workers, rounds = 8, 25
	is, incremental := s.(mailaccess.IncrementalState)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			mb := fmt.Sprintf("imap://user%d@example.com/INBOX", w)
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			want := map[mailaccess.UID]mailaccess.Record{}
			for i := range rounds {
				batch := []mailaccess.Record{stateRecord(fmt.Sprintf("%d/%d", w, i), w)}
				if i%4 == 0 {
					for j := range 20 {
						batch = append(batch, stateRecord(fmt.Sprintf("%d/b%d.%d", w, i, j), w))
					}
				}
				if err := s.Put(ctx, mb, batch...); err != nil {
					fail("Put: %v", err)
					return
				}
				for _, r := range batch {
					want[r.UID] = r
				}
				if i%3 == 0 && i > 0 {
					u := mailaccess.UID(fmt.Sprintf("%d/%d", w, i/2))
					if err := s.Forget(ctx, mb, u); err != nil {
						fail("Forget: %v", err)
						return
					}
					delete(want, u)
				}
				if incremental {
					if err := is.SetMark(ctx, mb, batch[0].UID); err != nil {
						fail("SetMark: %v", err)
						return
					}
					if m, err := is.Mark(ctx, mb); err != nil || m != batch[0].UID {
						fail("Mark = %q, %v; want %q", m, err, batch[0].UID)
						return
					}
					total, in, err := is.Count(ctx, mb, batch[0].Epoch)
					if err != nil || total != len(want) || in != len(want) {
						fail("Count = %d, %d, %v; want %d", total, in, err, len(want))
						return
					}
					got, err := is.Lookup(ctx, mb, batch[0].UID, "none")
					if err != nil || len(got) != 1 || !sameRecord(got[0], batch[0]) {
						fail("Lookup = %v, %v", got, err)
						return
					}
				}
				if i%10 == 9 {
					got, err := s.Records(ctx, mb)
					if err != nil {
						fail("Records: %v", err)
						return
					}
					if d := diffRecords(got, mapValues(want)); d != "" {
						fail("Records: %s", d)
						return
					}
				}
			}
			got, err := s.Records(ctx, mb)
			if err != nil {
				fail("Records: %v", err)
				return
			}
			if d := diffRecords(got, mapValues(want)); d != "" {
				fail("final Records: %s", d)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mapValues(m map[mailaccess.UID]mailaccess.Record) []mailaccess.Record {
	out := make([]mailaccess.Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// testStateCancelledPut checks that a Put whose context ends stores the
// whole batch or none of it: with the context cancelled before the call,
// and cancelled at a series of moments during it. A batch replaces some
// records too, so a half-applied one would show old and new versions
// side by side.
func testStateCancelledPut(t *testing.T, s mailaccess.State) {
	const n = 1000
	batch := func(version int) []mailaccess.Record {
		recs := make([]mailaccess.Record, n)
		for i := range recs {
			recs[i] = stateRecord(fmt.Sprintf("1/%d", i), version)
		}
		return recs
	}
	// check reports whether the mailbox holds old (all of version 0, or
	// nothing when old is nil) or new (version 1); it fails the test on a
	// mixture, or on old after a nil error.
	check := func(mb string, old, new []mailaccess.Record, err error, what string) (applied bool) {
		t.Helper()
		got := records(t, s, mb)
		if diffRecords(got, new) == "" {
			return true
		}
		if d := diffRecords(got, old); d != "" {
			t.Fatalf("%s: half a batch was stored (%d records, neither the old %d nor the new %d); against the old: %s", what, len(got), len(old), len(new), d)
		}
		if err == nil {
			t.Fatalf("%s: Put returned nil but did not store the batch", what)
		}
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Put(ctx, "cancelled/new", batch(1)...)
	check("cancelled/new", nil, batch(1), err, "Put with a cancelled context to an empty mailbox")
	put(t, s, "cancelled/old", batch(0)[:n/2]...)
	err = s.Put(ctx, "cancelled/old", batch(1)...)
	check("cancelled/old", batch(0)[:n/2], batch(1), err, "Put with a cancelled context over older records")

	// Cancelled during the call, at growing delays: early ones catch it
	// before it starts, late ones after it finished, the ones between in
	// the middle (where a State may stop, but only as a whole).
	stored, refused := 0, 0
	for i, d := range []time.Duration{0, 20 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		mb := fmt.Sprintf("cancelled/during/%d", i)
		old := batch(0)[:n/2]
		put(t, s, mb, old...)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(d, cancel)
		err := s.Put(ctx, mb, batch(1)...)
		timer.Stop()
		cancel()
		if check(mb, old, batch(1), err, fmt.Sprintf("Put cancelled after %v", d)) {
			stored++
		} else {
			refused++
		}
	}
	t.Logf("Put cancelled during the call: %d stored the batch, %d refused it", stored, refused)
	// The State goes on working.
	put(t, s, "cancelled/after", stateRecord("1/1", 1))
	sameRecords(t, "Put after cancelled ones", records(t, s, "cancelled/after"), []mailaccess.Record{stateRecord("1/1", 1)})
}
