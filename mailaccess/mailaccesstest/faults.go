package mailaccesstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/faultproxy"
	"github.com/unimail/unimail/mailaccess"
)

func testLarge(t *testing.T, s Server, size int) {
	var b bytes.Buffer
	b.Write(crlf("From: big@example.com\nSubject: large\nContent-Type: application/octet-stream\n\n"))
	line := []byte("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%1000 == 0 {
			b.WriteString(".a line that starts with a dot\r\n")
		}
		b.Write(line)
	}
	big := b.Bytes()
	msgs := [][]byte{Message(1), big, Message(3)}
	s.Seed(t, msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
	var sum [32]byte
	var n int64
	h := func(ctx context.Context, m *mailaccess.Message) error {
		hs := sha256.New()
		k, err := io.Copy(hs, m.Body)
		if err != nil {
			return err
		}
		if k > n {
			n = k
			copy(sum[:], hs.Sum(nil))
		}
		return nil
	}
	mb, err := s.Dial(ctxT(t), s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Fetch(ctxT(t), mb, h)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if rep.Delivered != 3 || n != int64(len(big)) || sum != sha256.Sum256(big) {
		t.Fatalf("large message: delivered %d, size %d (want %d), hash match %v", rep.Delivered, n, len(big), sum == sha256.Sum256(big))
	}
	if c := s.Contents(t); len(c) != 0 {
		t.Fatalf("server holds %d messages", len(c))
	}
}

// testDrops cuts the connection at every chunk boundary of a clean run
// (and in the middle of the longest chunks), in both directions, then runs
// again cleanly with the same state, and checks that every message was
// delivered exactly once and that the server holds what the retention
// says.
func testDrops(t *testing.T, newServer func(t *testing.T) Server, ret mailaccess.Retention, short bool) {
	s := newServer(t)
	msgs := [][]byte{Message(1), Sample()[1], Message(3)}
	// A clean run through the proxy gives the boundaries.
	s.Seed(t, msgs)
	p, err := faultproxy.New(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(t, s, p.Addr, &mailaccess.Fetcher{Retention: ret, State: &mailaccess.MemoryState{}}, &collector{}); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	up, down := p.Boundaries()
	p.Close()
	var cuts []faultproxy.Cut
	add := func(dir faultproxy.Direction, bounds []int64) {
		prev := int64(0)
		for _, b := range bounds {
			cuts = append(cuts, faultproxy.Cut{Dir: dir, At: prev})
			if b-prev > 64 {
				cuts = append(cuts, faultproxy.Cut{Dir: dir, At: prev + (b-prev)/2})
			}
			prev = b
		}
	}
	add(faultproxy.Up, up)
	add(faultproxy.Down, down)
	if short && len(cuts) > 12 {
		step := len(cuts) / 12
		var sample []faultproxy.Cut
		for i := 0; i < len(cuts); i += step {
			sample = append(sample, cuts[i])
		}
		cuts = sample
	}
	for _, cut := range cuts {
		s.Seed(t, msgs)
		st := &mailaccess.MemoryState{}
		c := &collector{}
		p, err := faultproxy.New(s.Addr(), &cut)
		if err != nil {
			t.Fatal(err)
		}
		_, ferr := fetch(t, s, p.Addr, &mailaccess.Fetcher{Retention: ret, State: st}, c)
		p.Close()
		if ferr == nil && len(c.got) < len(msgs) {
			t.Fatalf("cut %s@%d: Fetch returned nil but delivered %d of %d", cut.Dir, cut.At, len(c.got), len(msgs))
		}
		// Let the server notice the drop (a POP3 maildrop stays locked
		// until then), then finish cleanly.
		var rep mailaccess.Report
		deadline := time.Now().Add(10 * time.Second)
		for {
			rep, err = fetch(t, s, s.Addr(), &mailaccess.Fetcher{Retention: ret, State: st}, c)
			if err == nil || !mailaccess.IsTemporary(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("cut %s@%d (first run: %v): clean rerun: %v", cut.Dir, cut.At, ferr, err)
		}
		_ = rep
		for i, m := range msgs {
			if n := c.counts[sha256.Sum256(m)]; n != 1 {
				t.Fatalf("cut %s@%d (first run: %v): message %d delivered %d times, want exactly once", cut.Dir, cut.At, ferr, i, n)
			}
		}
		switch ret {
		case mailaccess.KeepOnServer:
			sameMessages(t, fmt.Sprintf("cut %s@%d: server", cut.Dir, cut.At), s.Contents(t), msgs)
		case mailaccess.DeleteAfterFetch:
			if n := len(s.Contents(t)); n != 0 {
				t.Fatalf("cut %s@%d: server holds %d after the clean rerun", cut.Dir, cut.At, n)
			}
		}
	}
	t.Logf("%d cut points, every message delivered exactly once", len(cuts))
}
