package mailaccess

import (
	"context"
	"encoding/hex"
	"time"
)

// Batch bounds a group commit. The messages that the handler took since
// the last group are made durable together, when one of the bounds is
// reached and at the end of the run: Fetcher.Flush (when set) makes the
// handler's copies durable, then one State.Put records them, and only then
// does their retention apply. A bound that is zero takes its default; a
// Batch of one message makes every message durable on its own.
type Batch struct {
	// Messages is the most messages in a group; zero means 256.
	Messages int
	// Bytes is the most octets in a group; zero means 8 MiB.
	Bytes int64
	// Delay is the longest that a taken message waits for its group to
	// be made durable while the run goes on; zero means one second.
	Delay time.Duration
}

// Defaults of Batch.
const (
	defaultBatchMessages = 256
	defaultBatchBytes    = 8 << 20
	defaultBatchDelay    = time.Second
)

func (b Batch) withDefaults() Batch {
	if b.Messages <= 0 {
		b.Messages = defaultBatchMessages
	}
	if b.Bytes <= 0 {
		b.Bytes = defaultBatchBytes
	}
	if b.Delay <= 0 {
		b.Delay = defaultBatchDelay
	}
	return b
}

// taken is a message that the handler took (or that was recognised by
// its fingerprint), waiting for its group to be made durable.
type taken struct {
	rec        Record // as listed: the retention applies to rec.UID
	recognized bool
}

// group is the group being gathered.
type group struct {
	limits Batch
	items  []taken
	bytes  int64
	start  time.Time
}

// take adds a taken message to the group, and makes the group durable
// when it is full or old enough.
func (r *fetch) take(rec Record, recognized bool) error {
	g := &r.group
	if len(g.items) == 0 {
		g.start = time.Now()
	}
	g.items = append(g.items, taken{rec: rec, recognized: recognized})
	g.bytes += rec.Size
	if len(g.items) >= g.limits.Messages || g.bytes >= g.limits.Bytes || time.Since(g.start) >= g.limits.Delay {
		return r.flush()
	}
	return nil
}

// due makes the group durable when its oldest message has waited Delay,
// between two messages.
func (r *fetch) due() error {
	if g := &r.group; len(g.items) > 0 && time.Since(g.start) >= g.limits.Delay {
		return r.flush()
	}
	return nil
}

// flush makes the group durable: the handler's sink first (Fetcher.Flush),
// then the State, in one Put. Only then are the messages counted as
// delivered and their retention applied. It runs even when ctx has ended:
// the handler already has these messages. On an error the group is
// dropped: its messages are not recorded, stay on the server, and the next
// run offers them again.
func (r *fetch) flush() error {
	g := &r.group
	if len(g.items) == 0 {
		if !r.lost {
			r.durable = r.taken // nothing waits: all that was taken is durable
		}
		return nil
	}
	items := g.items
	g.items, g.bytes = g.items[:0], 0
	ctx := context.WithoutCancel(r.ctx)
	if r.f.Flush != nil {
		if err := r.f.Flush(ctx); err != nil {
			r.lost = true
			return &Error{Op: "flush", Kind: ErrHandler, Err: err}
		}
	}
	if r.f.State != nil {
		recs := make([]Record, len(items))
		for i, t := range items {
			recs[i] = r.stateRecord(t.rec)
		}
		if err := r.f.State.Put(ctx, r.name, recs...); err != nil {
			r.lost = true
			return wrapState("write", err)
		}
	}
	for _, t := range items {
		if len(r.byHash) > 0 {
			if r.recorded == nil {
				r.recorded = map[UID]bool{}
			}
			r.recorded[r.stateRecord(t.rec).UID] = true
		}
		if t.recognized {
			r.rep.Recognized++
		} else {
			r.rep.Delivered++
			r.rep.Bytes += t.rec.Size
		}
		r.apply(t.rec)
	}
	if !r.lost {
		r.durable = r.taken
	}
	return nil
}

// stateRecord is rec as the State keeps it. Without stable UIDs (a POP3
// server without UIDL) a UID means nothing in the next session, so the
// record is keyed by the message's fingerprint instead.
func (r *fetch) stateRecord(rec Record) Record {
	if r.desc.SessionUIDs {
		rec.UID = UID("sha256:" + hex.EncodeToString(rec.SHA256[:]))
		rec.Epoch = ""
	}
	return rec
}
