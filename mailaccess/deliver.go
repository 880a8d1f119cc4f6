package mailaccess

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"sync"
)

func (r *fetch) problem(uid UID, err error) {
	r.rep.Problems = append(r.rep.Problems, &MessageError{UID: uid, Err: err})
}

// apply decides the retention of a taken message, given its record.
func (r *fetch) apply(rec Record) {
	switch p := r.policy; p.kind {
	case policyDelete:
		r.toDelete = append(r.toDelete, rec.UID)
	case policyKeepFor:
		if !r.f.now().Before(rec.Delivered.Add(p.period)) {
			r.toDelete = append(r.toDelete, rec.UID)
		}
	case policyMove:
		if rec.CopiedTo != "" && rec.CopiedTo == p.folder {
			// An earlier move copied it but could not remove it here:
			// removing it finishes the move without a second copy.
			r.toDelete = append(r.toDelete, rec.UID)
			return
		}
		r.toMove = append(r.toMove, rec)
	}
}

// one handles one listed message. A returned error stops the run.
func (r *fetch) one(info MessageInfo) error {
	if rec, ok := r.known[info.UID]; ok {
		r.rep.Skipped++
		r.apply(rec)
		r.step(true, false, 0)
		return nil
	}
	log := msgLog{ctx: r.ctx, l: r.log, uid: info.UID, size: info.Size}
	if !r.f.fits(info) {
		r.rep.TooLarge++
		r.problem(info.UID, newError("fetch", ErrTooLarge, "", fmt.Errorf("%d octets announced, limit %d", info.Size, r.f.MaxSize)))
		log.Warn("message too large, left on the server")
		r.step(false, false, 0)
		return nil
	}
	body, err := r.mb.Open(r.ctx, info.UID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			r.rep.Vanished++
			r.problem(info.UID, err)
			log.Info("message vanished before it was fetched")
			r.step(true, true, 0)
			return nil
		}
		return err
	}
	d := &delivery{m: meter{r: body, max: r.f.MaxSize}}
	m := &d.m
	if r.f.State != nil {
		// The fingerprint is kept only in a State.
		m.h = hashers.Get().(*hasher)
		m.h.Reset()
		defer m.release()
	}
	var src io.Reader = m
	var sp *spool
	if r.spoolAll {
		sp, err = newSpool(m, r.f.SpoolDir)
		if err == nil {
			err = m.err // a transport error or ErrTooLarge while spooling
		}
		body.Close()
		if err != nil {
			sp.close()
			return r.readFailed(info, m, err, log)
		}
		defer sp.close()
		sum := m.sum()
		if old, ok := r.byHash[sum]; ok {
			if old.Epoch == r.desc.UIDEpoch && !r.desc.SessionUIDs {
				r.rep.UIDReset = true // renumbered without an epoch change
			}
			log.Info("content already delivered under another UID; not delivered again")
			r.step(true, true, m.n)
			return r.take(Record{UID: info.UID, Epoch: r.desc.UIDEpoch, Delivered: old.Delivered, Size: m.n, SHA256: sum}, true)
		}
		src = sp.reader()
	}
	d.msg = Message{Mailbox: r.name, Info: info, Body: src}
	msg := &d.msg
	herr := r.h(r.ctx, msg)
	if herr == nil && sp == nil {
		// The handler has the message: read what it left unread, for
		// the fingerprint and the size.
		_, _ = io.Copy(io.Discard, m)
	}
	if sp == nil {
		cerr := body.Close()
		if m.err == nil && cerr != nil && !m.eof {
			m.err = cerr
		}
	}
	if sp == nil && m.err != nil {
		return r.readFailed(info, m, m.err, log)
	}
	if herr != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		r.rep.Failed++
		r.refused = append(r.refused, &MessageError{UID: info.UID, Err: herr})
		r.problem(info.UID, herr)
		log.Warn("handler refused the message; it stays on the server", "err", herr)
		r.stopped = r.f.StopOnError
		r.step(false, true, m.n)
		return nil
	}
	sum := m.sum()
	if log.enabled(slog.LevelInfo) {
		log.Info("delivered", "bytes", m.n)
	}
	r.step(true, true, m.n)
	return r.take(Record{UID: info.UID, Epoch: r.desc.UIDEpoch, Delivered: r.f.now(), Size: m.n, SHA256: sum}, false)
}

// readFailed classifies an error met while reading a message: too large
// is a per-message problem, anything else ends the run.
func (r *fetch) readFailed(info MessageInfo, m *meter, err error, log msgLog) error {
	if errors.Is(err, ErrTooLarge) {
		r.rep.TooLarge++
		r.problem(info.UID, err)
		log.Warn("message larger than announced and than the limit; left on the server")
		r.step(false, true, m.n)
		return nil
	}
	return err
}

// msgLog logs the events of one message with its UID and size. Unlike a
// Logger.With per message, it costs nothing for the events the handler
// does not want.
type msgLog struct {
	ctx  context.Context
	l    *slog.Logger
	uid  UID
	size int64
}

func (m msgLog) log(level slog.Level, msg string, args []any) {
	if !m.l.Enabled(m.ctx, level) {
		return
	}
	m.l.Log(m.ctx, level, msg, append([]any{"uid", string(m.uid), "size", m.size}, args...)...)
}

// enabled reports whether events of the level are logged: a caller on
// the path of every message asks first, so that its arguments are not
// made for nothing.
func (m msgLog) enabled(level slog.Level) bool { return m.l.Enabled(m.ctx, level) }

// Info logs at Info.
func (m msgLog) Info(msg string, args ...any) { m.log(slog.LevelInfo, msg, args) }

// Warn logs at Warn.
func (m msgLog) Warn(msg string, args ...any) { m.log(slog.LevelWarn, msg, args) }

// delivery is what the hand-over of one message needs: the Message and
// the meter behind its Body, in one allocation.
type delivery struct {
	msg Message
	m   meter
}

// hasher is a SHA-256 state with room for its sum. One serves message
// after message (hashers), Reset for each.
type hasher struct {
	hash.Hash
	buf [sha256.Size]byte
}

var hashers = sync.Pool{New: func() any { return &hasher{Hash: sha256.New()} }}

// meter counts, hashes and limits the bytes of one message.
type meter struct {
	r   io.Reader
	h   *hasher // nil when not hashing
	n   int64
	max int64
	err error
	eof bool
}

func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.eof {
		return 0, io.EOF
	}
	n, err := m.r.Read(p)
	if n > 0 {
		if m.h != nil {
			m.h.Write(p[:n])
		}
		m.n += int64(n)
		if m.max > 0 && m.n > m.max {
			m.err = newError("fetch", ErrTooLarge, "", fmt.Errorf("more than %d octets", m.max))
			return 0, m.err
		}
	}
	if err == io.EOF {
		m.eof = true
	} else if err != nil {
		m.err = err
	}
	return n, err
}

// sum returns the SHA-256 of the bytes read, or zeros when not hashing.
func (m *meter) sum() (sum [sha256.Size]byte) {
	if m.h != nil {
		copy(sum[:], m.h.Sum(m.h.buf[:0]))
	}
	return sum
}

// release gives the hasher back, once the message is done with: a Body
// read after that (which a Handler must not do) hashes nothing.
func (m *meter) release() {
	if m.h != nil {
		hashers.Put(m.h)
		m.h = nil
	}
}

// spool holds one whole message, in memory up to spoolMem and in a
// temporary file beyond.
type spool struct {
	mem  bytes.Buffer
	file *os.File
}

const spoolMem = 32 << 20

func newSpool(r io.Reader, dir string) (*spool, error) {
	s := &spool{}
	_, err := io.CopyN(&s.mem, r, spoolMem+1)
	if err == io.EOF {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	f, err := os.CreateTemp(dir, "unimail-spool-*")
	if err != nil {
		return s, err
	}
	os.Remove(f.Name())
	s.file = f
	if _, err := s.mem.WriteTo(f); err != nil {
		return s, err
	}
	if _, err := io.Copy(f, r); err != nil {
		return s, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return s, err
}

func (s *spool) reader() io.Reader {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem.Bytes())
}

func (s *spool) close() {
	if s != nil && s.file != nil {
		s.file.Close()
	}
}
