package imap

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Limits of one batched UID FETCH (a window) and of the pipeline.
const (
	// windowMessages is the most UIDs in one window.
	windowMessages = 10000
	// windowRuns is the most runs of consecutive UIDs in one window, so
	// that its command line stays within a few KiB (a run is "n" or
	// "n:m", at most 22 octets) however sparse the UIDs: servers limit
	// the length of a command line (Dovecot to 64 KiB).
	windowRuns = 256
	// windowBytes is the most announced octets (RFC822.SIZE) in one
	// window; a window holds at least one message. Windows are few and
	// large because each one costs a pause: the next is sent only once
	// the current one was read to its end, and on Dovecot a second window
	// for 2000 small messages made their drain some 10% slower.
	windowBytes = 256 << 20
	// windowsAhead is the most windows sent and not yet read to their
	// end. It is 1: the next window is sent once the current one's tagged
	// status is in. Sending it earlier is not safe with go-imap, which
	// reads one command's answers at a time: Dovecot, for one, sends the
	// tagged OK of a FETCH after the data of the FETCH pipelined behind
	// it, so waiting for the end of the first window (to learn that its
	// last message is missing) would wait behind a literal of the second
	// that nobody reads. The windows are large enough instead that one
	// round trip per window is a small part of its transfer.
	windowsAhead = 1
)

// codeExpungeIssued is RFC 5530's EXPUNGEISSUED: some of the messages
// asked for were expunged by another session.
const codeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"

// prefetch is the announcement of WillOpen and the batched UID FETCH
// commands in flight. Its mutex is held by whoever touches the commands
// (Open while it waits for a message, the drains, shutdown), never while
// the caller reads a message; a messageReader takes it only after its own.
type prefetch struct {
	mu      sync.Mutex
	queue   []imap.UID // announced, neither sent in a window nor opened
	windows []*window  // sent, oldest first
	// off stops batching for the rest of the session: the server answered
	// a window out of UID order.
	off bool
}

// window is one batched UID FETCH <set> (UID BODY.PEEK[]).
type window struct {
	cmd    *imapclient.FetchCommand
	uids   []imap.UID       // ascending, as asked
	index  map[imap.UID]int // position of each UID in uids
	pos    int              // uids[:pos] are behind the reader
	strays int64            // Mailbox.strays when the window was sent
	// pending is a message that arrived while an earlier UID was asked
	// for; the decoder waits on its literal until it is taken or drained.
	// Its msg is nil when there is none.
	pending windowMsg
	stale   bool // from an announcement that WillOpen replaced
}

// windowMsg is a message of a window whose body literal is open. It is
// passed by value: a message costs no allocation of its own here.
type windowMsg struct {
	uid imap.UID
	msg *imapclient.FetchMessageData
	lit imap.LiteralReader // nil for a NIL body
}

// WillOpen announces the UIDs that the next Open calls will ask for, in
// that order (driver.Prefetcher). It sends nothing: the first Open
// sends a batched UID FETCH <set> (UID BODY.PEEK[]) for the next run of
// announced messages in ascending UID order (a window of up to 10,000
// messages, 256 runs of consecutive UIDs or 256 MiB of listed size), so
// that the server streams them back
// to back, and the Open after the window's last message sends the next
// one; each message is still read from the socket as the caller reads
// it. Messages larger than Options.ChunkSize, or whose size the last List
// did not give, are not batched: they are fetched in chunks at their Open.
// Announced messages that are not opened are read past and discarded. An
// Open of a message that was not announced (or not in this order) is
// served by a fetch of its own, after the window in flight was read to
// its end; the rest of the announcement stays batched.
//
// A new announcement replaces the earlier one. UIDs that are malformed or
// of another UIDVALIDITY are left out (Open reports them). List and
// ListAfter end any announcement.
func (m *Mailbox) WillOpen(uids ...mailaccess.UID) {
	q := make([]imap.UID, 0, len(uids))
	for _, u := range uids {
		uid, current, err := m.parseUID(opFetch, u)
		if err == nil && current {
			q = append(q, uid)
		}
	}
	m.pf.mu.Lock()
	defer m.pf.mu.Unlock()
	for _, w := range m.pf.windows {
		w.stale = true
	}
	m.pf.queue = q
}

// batchable says whether uid can be fetched in a window: its size is
// known and at most ChunkSize.
func (m *Mailbox) batchable(uid imap.UID) bool {
	size, ok := m.size(uid)
	return ok && size >= 0 && size <= m.opts.ChunkSize
}

// sendWindows sends windows from the head of the queue until windowsAhead
// are in flight. Called with pf.mu held.
func (m *Mailbox) sendWindows() {
	pf := &m.pf
	for !pf.off && len(pf.windows) < windowsAhead && len(pf.queue) > 0 && m.batchable(pf.queue[0]) {
		n, runs, bytes := 0, 0, int64(0)
		for n < len(pf.queue) && n < windowMessages {
			uid := pf.queue[n]
			size, _ := m.size(uid)
			if !m.batchable(uid) || (n > 0 && (uid <= pf.queue[n-1] || bytes+size > windowBytes)) {
				break
			}
			if n == 0 || uid != pf.queue[n-1]+1 {
				if runs == windowRuns {
					break
				}
				runs++
			}
			bytes += size
			n++
		}
		uids := slices.Clone(pf.queue[:n])
		pf.queue = pf.queue[n:]
		w := &window{uids: uids, index: make(map[imap.UID]int, n), strays: m.strays.Load()}
		for i, uid := range uids {
			w.index[uid] = i
		}
		w.cmd = m.client.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		pf.windows = append(pf.windows, w)
		m.log.Debug("imap batched fetch sent", "messages", n, "bytes", bytes)
	}
}

// locate finds uid in the windows in flight (ahead of their readers) and
// in the queue. wi is the window's index or -1; qi is the queue index or
// -1. Called with pf.mu held.
func (m *Mailbox) locate(uid imap.UID) (wi, qi int) {
	for i, w := range m.pf.windows {
		if idx, ok := w.index[uid]; ok && idx >= w.pos && !w.stale {
			return i, -1
		}
	}
	return -1, slices.Index(m.pf.queue, uid)
}

// openBatched serves Open from the windows when it can. ok is false when
// uid must be fetched on its own; any windows in flight have then been
// read to their end (their messages requeued when they may still be
// opened). Called with pf.mu held, under Open's guard.
func (m *Mailbox) openBatched(r *messageReader) (ok bool, err error) {
	pf := &m.pf
	wi, qi := m.locate(r.uid)
	switch {
	case wi >= 0:
		// Windows before the one holding uid were skipped by the caller.
		for range wi {
			if err := m.dropWindow(); err != nil {
				return true, err
			}
		}
	case qi >= 0:
		// Everything in flight and queue[:qi] come before uid: skipped.
		for len(pf.windows) > 0 {
			if err := m.dropWindow(); err != nil {
				return true, err
			}
		}
		pf.queue = pf.queue[qi:]
		if pf.off || !m.batchable(r.uid) {
			pf.queue = pf.queue[1:]
			return false, nil
		}
		m.sendWindows()
	default:
		// Not announced: fetched on its own, after what is in flight.
		if err := m.settle(true); err != nil {
			return true, err
		}
		return false, nil
	}
	m.sendWindows()
	return true, m.readWindow(r)
}

// readWindow reads the first window until the body of r.uid, which it
// hands to r. Called with pf.mu held.
func (m *Mailbox) readWindow(r *messageReader) error {
	w := m.pf.windows[0]
	want := w.index[r.uid]
	for {
		wm := w.pending
		w.pending = windowMsg{}
		if wm.msg == nil {
			var err error
			wm, err = m.nextWindowMsg(w)
			if err != nil {
				return err
			}
		}
		if wm.msg == nil {
			// The window ended without the message.
			err := m.endWindow()
			if err != nil && !errors.Is(err, errExpungeIssued) {
				return err
			}
			if m.strays.Load() != w.strays {
				return m.strayError(r.uid)
			}
			return m.notFound(r.uid)
		}
		idx, asked := w.index[wm.uid]
		switch {
		case !asked || idx < w.pos:
			// Not asked for, or behind the reader: a server that answers
			// out of UID order. Its body is discarded and batching ends.
			if asked {
				m.pf.off = true
				m.log.Warn("imap server answered a batched fetch out of UID order; batching turned off", "uid", wm.uid)
			}
			if err := m.discardMsg(wm); err != nil {
				return err
			}
		case idx < want:
			// Announced but not opened.
			w.pos = idx + 1
			if err := m.discardMsg(wm); err != nil {
				return err
			}
		case idx == want:
			w.pos = idx + 1
			if wm.lit == nil {
				if err := m.discardMsg(wm); err != nil {
					return err
				}
				return m.nilBody(r.uid)
			}
			if size := wm.lit.Size(); size > m.opts.ChunkSize {
				m.conn.Kill(errors.New("oversized literal"))
				_ = m.discardMsg(wm)
				return mailerr.New(fetchOp, mailaccess.ErrProtocol, "", errors.New("the server announced a body of "+strconv.FormatInt(size, 10)+" octets for a message listed at "+strconv.FormatInt(listedSize(m, r.uid), 10)))
			}
			r.msg, r.lit, r.size, r.got, r.last = wm.msg, wm.lit, wm.lit.Size(), 0, true
			return nil
		default:
			// A later message came first: in UID order, which servers
			// follow, the one asked for is not there.
			w.pos = want + 1
			w.pending = wm
			if m.strays.Load() != w.strays {
				return m.strayError(r.uid)
			}
			return m.notFound(r.uid)
		}
	}
}

// listedSize is the listed size of uid, 0 when it is not listed.
func listedSize(m *Mailbox, uid imap.UID) int64 {
	size, _ := m.size(uid)
	return size
}

// errExpungeIssued marks a window that ended with NO [EXPUNGEISSUED].
var errExpungeIssued = errors.New("the server says some messages were expunged")

func (m *Mailbox) notFound(uid imap.UID) error {
	return mailerr.New(fetchOp, mailaccess.ErrNotFound, "",
		errors.New("no message with UID "+strconv.FormatUint(uint64(uid), 10)+" (expunged)"))
}

// nilBody is the error for BODY[] NIL, which Dovecot sends for a message
// that another session expunged (its content is gone; the tagged status
// then says NO [EXPUNGEISSUED]): ErrNotFound.
func (m *Mailbox) nilBody(uid imap.UID) error {
	return mailerr.New(fetchOp, mailaccess.ErrNotFound, "",
		errors.New("the server has no content any more for UID "+strconv.FormatUint(uint64(uid), 10)+" (BODY[] NIL: expunged by another session)"))
}

func (m *Mailbox) strayError(uid imap.UID) error {
	return mailerr.New(fetchOp, mailaccess.ErrProtocol, "",
		errors.New("the server answered the UID FETCH with a body that could not be matched to UID "+strconv.FormatUint(uint64(uid), 10)+" (the UID after the literal?); the message is not known to be gone"))
}

// nextWindowMsg returns the next message of w that has a body, one with a
// nil msg at the end of the window. Messages without a body (a FETCH of flags only, as a
// server sends for a message another client expunged) are passed over.
func (m *Mailbox) nextWindowMsg(w *window) (windowMsg, error) {
	m.control()
	defer m.endControl()
	for {
		msg := w.cmd.Next()
		if msg == nil {
			return windowMsg{}, nil
		}
		wm := windowMsg{msg: msg}
		body := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				wm.uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if isWholeBody(it) {
					wm.lit, body = it.Literal, true
				}
			}
			if body {
				break
			}
		}
		if body {
			return wm, nil
		}
		if err := m.conn.Reason(); err != nil {
			return windowMsg{}, m.connError(fetchOp, err)
		}
	}
}

// isWholeBody says whether bs is BODY[] (or a partial of it).
func isWholeBody(bs imapclient.FetchItemDataBodySection) bool {
	return bs.Section != nil && bs.Section.Specifier == imap.PartSpecifierNone && len(bs.Section.Part) == 0
}

// discardMsg reads the rest of a window message. A literal that ends short
// of its size means the connection failed: it is killed.
func (m *Mailbox) discardMsg(wm windowMsg) error {
	if wm.lit != nil {
		n, err := io.Copy(io.Discard, wm.lit)
		if err == nil && n != wm.lit.Size() {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			m.litFailed.Store(true)
			m.conn.Kill(err)
			return m.fail(fetchOp, err, nil)
		}
	}
	m.control()
	defer m.endControl()
	for item := wm.msg.Next(); item != nil; item = wm.msg.Next() {
	}
	return nil
}

// endWindow reads the tagged status of the first window and removes it.
// NO [EXPUNGEISSUED] is errExpungeIssued; another NO or BAD, or a lost
// connection, is the error of fail.
func (m *Mailbox) endWindow() error {
	w := m.pf.windows[0]
	m.pf.windows = m.pf.windows[1:]
	m.control()
	err := w.cmd.Close()
	m.endControl()
	var ie *imap.Error
	if errors.As(err, &ie) && m.conn.Reason() == nil && ie.Code == codeExpungeIssued {
		return errExpungeIssued
	}
	return m.fail(fetchOp, err, nil)
}

// dropWindow reads the first window to its end, discarding its messages,
// and removes it. A NO or BAD for it is ignored (its messages were not
// going to be opened); a lost connection is not.
func (m *Mailbox) dropWindow() error {
	w := m.pf.windows[0]
	if w.pending.msg != nil {
		wm := w.pending
		w.pending = windowMsg{}
		if err := m.discardMsg(wm); err != nil {
			return err
		}
	}
	for {
		wm, err := m.nextWindowMsg(w)
		if err != nil {
			return err
		}
		if wm.msg == nil {
			break
		}
		if err := m.discardMsg(wm); err != nil {
			return err
		}
	}
	err := m.endWindow()
	if errors.Is(err, mailaccess.ErrConnection) || errors.Is(err, mailaccess.ErrProtocol) {
		return err
	}
	return nil
}

// settle reads every window in flight to its end so that another command
// can be sent. With requeue, the messages of the announcement that were
// not reached go back to the head of the queue. Called with pf.mu held.
func (m *Mailbox) settle(requeue bool) error {
	var back []imap.UID
	for len(m.pf.windows) > 0 {
		w := m.pf.windows[0]
		if requeue && !w.stale {
			back = append(back, w.uids[w.pos:]...)
		}
		if err := m.dropWindow(); err != nil {
			return err
		}
	}
	if len(back) > 0 {
		m.pf.queue = append(back, m.pf.queue...)
	}
	return nil
}

// settleFor is settle for the methods other than Open: the windows in
// flight are read to their end and the announcement ends when end is set.
func (m *Mailbox) settleFor(end bool) error {
	m.pf.mu.Lock()
	defer m.pf.mu.Unlock()
	if end {
		m.pf.queue = nil
	}
	return m.settle(!end)
}

// releaseWindows makes go-imap's reader goroutine let go of the windows
// after the connection was killed: every literal is read to its error (at
// once: the socket is closed) and every command to its end.
//
// go-imap holds at most one literal open at a time. Once a literal read
// has failed, go-imap's goroutine has gone on and ends at the dead socket,
// and that literal, its message and its command must never be touched
// again (they would read the socket concurrently with it): then nothing
// is done but forgetting the windows.
func (m *Mailbox) releaseWindows() {
	m.pf.mu.Lock()
	defer m.pf.mu.Unlock()
	for _, w := range m.pf.windows {
		if m.litFailed.Load() {
			break
		}
		if w.pending.lit != nil {
			_, _ = io.Copy(io.Discard, w.pending.lit)
			m.litFailed.Store(true)
			break
		}
		_ = w.cmd.Close()
	}
	m.pf.windows = nil
	m.pf.queue = nil
}
