package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// errReaderClosed is returned by Read after Close.
var errReaderClosed = errors.New("imap: read after Close")

// Open streams the raw bytes of the message with the given UID, exactly as
// the server stores them, from UID FETCH <uid> (UID BODY.PEEK[]): nothing
// is buffered beyond go-imap's socket buffer, and \Seen is not set.
// Messages larger than Options.ChunkSize, and messages whose size List did
// not give, are fetched in BODY.PEEK[]<offset.size> chunks. After
// WillOpen, announced messages come from batched UID FETCH commands (see
// WillOpen), still streamed from the socket one at a time.
//
// A UID of another UIDVALIDITY, one for which the server returns no data
// (the message was expunged), or one whose body the server returns as NIL
// (Dovecot's answer for a message that another session expunged) is
// ErrNotFound. An answer with a body
// that go-imap could not match to the UID (some servers put the UID after
// the literal) is ErrProtocol: the message is not known to be gone. In a
// batch, a message counts as returned with no data when the server
// answers for a later UID of the batch, or ends the batch, without it
// (servers answer in UID order); a server that answered out of UID order
// would have that message reported as not found once (it is offered
// again by the next run) and batching is then turned off.
//
// ctx bounds the whole reading, not just this call: when it ends, the
// connection is closed and Read fails. Options.Timeout bounds the wait
// for the FETCH response in total, and each stall while the body streams.
// The reader must be closed before any other method is called; Close
// skips the rest of the message (draining the chunk in flight, so that
// the session stays usable). Read returns io.EOF only once every octet
// of the body literal announced by the server has been read: a
// connection that ends inside the message is an error, never a short
// message. For a single fetch, io.EOF comes after the server confirmed
// the FETCH with OK; in a batch, as soon as the literal was read in full
// (the rest of the message's FETCH response and the batch's tagged status
// are read with the next message: a connection lost after the literal
// fails the next Open, not this message, which is complete).
func (m *Mailbox) Open(ctx context.Context, uid mailaccess.UID) (io.ReadCloser, error) {
	const op = fetchOp
	if err := m.ready(ctx, op); err != nil {
		return nil, err
	}
	n, current, err := m.parseUID(op, uid)
	if err != nil {
		return nil, err
	}
	if !current {
		return nil, mailerr.New(op, mailaccess.ErrNotFound, "", errors.New("the folder's UIDVALIDITY is now "+strconv.FormatUint(uint64(m.uidValidity), 10)+": UID "+string(uid)+" names no message any more"))
	}
	size, known := m.size(n)
	r := &messageReader{
		ctx:     ctx,
		m:       m,
		uid:     n,
		chunked: !known || size < 0 || size > m.opts.ChunkSize,
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.mu.Lock()
	m.reader = r
	m.mu.Unlock()
	r.g = m.begin(ctx, boundStall)
	m.pf.mu.Lock()
	batched, err := m.openBatched(r)
	m.pf.mu.Unlock()
	if err == nil && !batched {
		err = r.start()
	}
	if err != nil {
		r.release(err)
		return nil, err
	}
	return r, nil
}

// messageReader streams one message from one or more FETCH literals.
//
// go-imap's reader goroutine waits until each literal has been read to its
// end or to an error; every path here (EOF, error, Close, Abort) ensures
// that, or go-imap would hang.
type messageReader struct {
	ctx     context.Context
	m       *Mailbox
	uid     imap.UID
	chunked bool
	g       guard

	mu     sync.Mutex
	offset int64 // offset of the current chunk in the message
	cmd    *imapclient.FetchCommand
	msg    *imapclient.FetchMessageData
	lit    imap.LiteralReader // nil between chunks
	size   int64              // size of lit
	got    int64              // bytes read from lit
	last   bool               // lit is the last chunk
	err    error              // sticky: io.EOF or the failure
}

const fetchOp = opFetch

// start sends the FETCH of the chunk at r.offset and waits for its body
// literal.
func (r *messageReader) start() error {
	m := r.m
	section := &imap.FetchItemBodySection{Peek: true}
	if r.chunked {
		section.Partial = &imap.SectionPartial{Offset: r.offset, Size: m.opts.ChunkSize}
	}
	strays := m.strays.Load()
	m.control()
	defer m.endControl()
	cmd := m.client.Fetch(imap.UIDSetNum(r.uid), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{section},
	})
	protocolErr := func(what string) error {
		if err := cmd.Close(); err != nil { // drains the literal
			return m.fail(fetchOp, err, nil)
		}
		return mailerr.New(fetchOp, mailaccess.ErrProtocol, "", errors.New(what))
	}
	// A message may come without a body: a FETCH that only reports
	// flags, as a server does for a message another client expunged.
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			bs, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || bs.Section == nil || bs.Section.Specifier != imap.PartSpecifierNone || len(bs.Section.Part) != 0 {
				continue
			}
			p := bs.Section.Partial
			last := true
			switch {
			case bs.Literal == nil && r.offset > 0:
				// NIL past the end of the message: nothing more.
				bs.Literal = emptyLiteral{}
			case bs.Literal == nil:
				// Dovecot's answer for a message that another session
				// expunged: no content any more.
				err := cmd.Close()
				var ie *imap.Error
				if err == nil || (errors.As(err, &ie) && m.conn.Reason() == nil && ie.Code == codeExpungeIssued) {
					return m.nilBody(r.uid)
				}
				return m.fail(fetchOp, err, nil)
			case r.oversized(bs.Literal.Size(), p != nil):
				// Never drained: it may be huge. The connection goes.
				m.conn.Kill(errors.New("oversized literal"))
				_, _ = io.Copy(io.Discard, bs.Literal)
				m.litFailed.Store(true)
				return mailerr.New(fetchOp, mailaccess.ErrProtocol, "", errors.New("the server announced a body of "+strconv.FormatInt(bs.Literal.Size(), 10)+" octets, more than was asked for"))
			case !r.chunked:
			case p == nil:
				// The whole message although a chunk was asked for: accept
				// it only as the first chunk.
				if r.offset != 0 {
					return protocolErr("the server ignored the partial range of the chunk at offset " + strconv.FormatInt(r.offset, 10))
				}
			case p.Offset != r.offset:
				return protocolErr("the server returned the chunk at offset " + strconv.FormatInt(p.Offset, 10) + " instead of " + strconv.FormatInt(r.offset, 10))
			default:
				last = bs.Literal.Size() < m.opts.ChunkSize
			}
			r.cmd, r.msg, r.lit, r.size, r.got, r.last = cmd, msg, bs.Literal, bs.Literal.Size(), 0, last
			return nil
		}
	}
	if err := cmd.Close(); err != nil {
		return m.fail(fetchOp, err, nil)
	}
	if m.strays.Load() != strays {
		return mailerr.New(fetchOp, mailaccess.ErrProtocol, "",
			errors.New("the server answered the UID FETCH with a body that could not be matched to UID "+strconv.FormatUint(uint64(r.uid), 10)+" (the UID after the literal?); the message is not known to be gone"))
	}
	return mailerr.New(fetchOp, mailaccess.ErrNotFound, "",
		errors.New("no message with UID "+strconv.FormatUint(uint64(r.uid), 10)+" (expunged)"))
}

// oversized says whether a body literal of size octets is more than was
// asked for: more than ChunkSize for a whole message listed at most that
// large or for a chunk, more than the listed size for a whole message
// sent although a chunk was asked for. Such a literal is never drained.
func (r *messageReader) oversized(size int64, partial bool) bool {
	if !r.chunked || partial {
		return size > r.m.opts.ChunkSize
	}
	listed, ok := r.m.size(r.uid)
	return ok && listed >= 0 && size > listed
}

// emptyLiteral stands for a NIL chunk past the end of a message.
type emptyLiteral struct{}

func (emptyLiteral) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyLiteral) Size() int64              { return 0 }

// finishCmd ends the message after its literal was read to its end.
//
// A single fetch consumes the rest of its FETCH answer and its tagged
// status. A message of a batched window has no command of its own and
// ends with its literal: the rest of its FETCH response is left to
// go-imap's reader, which parses it and goes on to the next message on
// its own (waiting for it here would cost a hand-off between goroutines
// per message), and the window's tagged status is read by the next Open
// (or by the next command). A connection that fails after the literal
// fails the next Open or the window's end, not this message, which is
// complete.
func (r *messageReader) finishCmd() error {
	cmd := r.cmd
	if cmd == nil {
		r.msg, r.lit = nil, nil
		return nil
	}
	r.m.control()
	defer r.m.endControl()
	for item := r.msg.Next(); item != nil; item = r.msg.Next() {
	}
	r.cmd, r.msg, r.lit = nil, nil, nil
	if err := cmd.Close(); err != nil {
		return r.m.fail(fetchOp, err, nil)
	}
	return nil
}

// readLit reads from the current literal. go-imap reports a connection
// that ends inside a literal as a plain io.EOF: a literal that ends short
// of its announced size is io.ErrUnexpectedEOF here, never a short
// message.
func (r *messageReader) readLit(p []byte) (int, error) {
	n, err := r.lit.Read(p)
	r.got += int64(n)
	if err == io.EOF && r.got != r.size {
		err = fmt.Errorf("the message literal ended after %d of %d bytes: %w", r.got, r.size, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		r.m.litFailed.Store(true)
	}
	return n, err
}

// broken handles a literal that failed. go-imap's reader goroutine went
// on at the error, so the literal, the message and the command must never
// be touched again (that would race with it, and their Next and Close
// would read the literal again). The connection is out of step: it is
// killed, which also ends that goroutine.
func (r *messageReader) broken(err error) {
	e := r.m.fail(fetchOp, err, nil)
	r.m.conn.Kill(err)
	r.cmd, r.msg, r.lit = nil, nil, nil
	r.release(e)
}

// Read reads the message. It returns io.EOF once the whole message was
// read and the server confirmed the last FETCH with OK.
func (r *messageReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.ctx.Err() != nil {
			// The connection was killed when ctx ended; what go-imap had
			// buffered is not delivered either.
			r.m.conn.Kill(mailerr.ContextErr(r.ctx))
			r.drop()
			r.release(r.m.connError(fetchOp, r.m.conn.Reason()))
			continue
		}
		if r.lit == nil {
			if err := r.start(); err != nil {
				r.release(err)
				continue
			}
		}
		n, err := r.readLit(p)
		switch {
		case err == io.EOF:
			r.offset += r.size
			if ferr := r.finishCmd(); ferr != nil {
				r.release(ferr)
			} else if r.last {
				r.release(io.EOF)
			}
			if n > 0 || len(p) == 0 {
				return n, nil
			}
		case err != nil:
			r.broken(err)
			return n, r.err
		default:
			return n, nil
		}
	}
}

// Close ends the reading. When the message was not read to its end, the
// rest of the chunk in flight is drained so that the session stays usable
// (bounded by Options.Timeout per stall, and by Open's context).
func (r *messageReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil
	}
	if r.lit != nil {
		buf := make([]byte, 32<<10)
		for {
			_, err := r.readLit(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				r.broken(err)
				return r.err
			}
		}
		if err := r.finishCmd(); err != nil {
			r.release(err)
			return err
		}
	}
	r.release(errReaderClosed)
	return nil
}

// finish closes the reader on behalf of Mailbox.Close, bounded by ctx too.
func (r *messageReader) finish(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { r.m.conn.Kill(mailerr.ContextErr(ctx)) })
	defer stop()
	r.Close()
}

// abort releases go-imap's reader goroutine after the connection was
// killed: when it waits on the literal, the literal is read to its end or
// error (at once: the socket is closed), and everything is dropped.
func (r *messageReader) abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.drop()
	r.release(r.m.connError(fetchOp, r.m.conn.Reason()))
}

// drop reads the current literal to its end or error, after the
// connection was killed, and forgets the command.
func (r *messageReader) drop() {
	if r.lit != nil {
		buf := make([]byte, 32<<10)
		for {
			if _, err := r.readLit(buf); err != nil {
				break
			}
		}
	}
	r.cmd, r.msg, r.lit = nil, nil, nil
}

// release records the final state, ends the guard and detaches the reader.
func (r *messageReader) release(err error) {
	r.err = err
	r.g.end()
	r.logOutcome(err)
	r.m.mu.Lock()
	if r.m.reader == r {
		r.m.reader = nil
	}
	r.m.mu.Unlock()
}

// logOutcome logs how the reading ended: at Debug, or at Warn for a
// failure. Nothing is formatted for a level the logger does not want.
func (r *messageReader) logOutcome(err error) {
	level := slog.LevelDebug
	if err != io.EOF && err != errReaderClosed && !errors.Is(err, mailaccess.ErrNotFound) {
		level = slog.LevelWarn
	}
	if !r.m.log.Enabled(context.Background(), level) {
		return
	}
	uid := r.m.makeUID(r.uid)
	switch {
	case err == io.EOF:
		r.m.log.Debug("imap fetch", "uid", string(uid), "size", r.offset, "outcome", "complete")
	case err == errReaderClosed:
		r.m.log.Debug("imap fetch", "uid", string(uid), "size", r.offset+r.got, "outcome", "closed before the end")
	case errors.Is(err, mailaccess.ErrNotFound):
		r.m.log.Debug("imap fetch", "uid", string(uid), "outcome", "not found")
	default:
		r.m.log.Warn("imap fetch", "uid", string(uid), "outcome", "failed", "err", err)
	}
}
