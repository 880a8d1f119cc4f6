package imap

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/internal/dialopt"
	"github.com/unimail/unimail/internal/imapconn"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// Mailbox is a session with one IMAP folder. It implements
// mailaccess.Mailbox and the optional Mover, Folders, Watcher and
// Describer.
//
// Like every mailaccess.Mailbox, it is driven by one goroutine at a time;
// Abort alone may be called from any goroutine, at any time.
type Mailbox struct {
	opts        Options
	name        string
	host        string
	conn        *imapconn.Conn
	client      *imapclient.Client
	caps        imap.CapSet
	preLogin    imap.CapSet // the capabilities before login (nil without login)
	capList     []string
	uidValidity uint32
	secrets     []string // credentials to scrub from server texts
	idleRestart time.Duration

	changed chan struct{} // EXISTS or EXPUNGE seen; 1-buffered
	strays  *atomic.Int64 // FETCH bodies the client could not match

	marks map[imap.UID]struct{} // deletion marks of the current epoch
	// listed is the last List: each message's UID and RFC822.SIZE, in
	// ascending UID order without repeats (see size).
	listed []listedMsg

	uidNext imap.UID // UIDNEXT from SELECT, 0 when not sent
	// selectCount is the message count of SELECT.
	selectCount uint32
	arrivals    *atomic.Bool // EXISTS seen since SELECT: uidNext may be stale
	pf          prefetch     // WillOpen's announcement and batched fetches
	// litFailed is set once a read of a message literal failed: go-imap
	// has then let go of it, and no literal may be read again.
	litFailed *atomic.Bool
	log       *slog.Logger
	tracer    *tracer // nil: no trace
	wire      *wire   // the plaintext connection under the client
	// total bounds the operations of a guard with boundTotal, ctl the
	// control waits (see control).
	total, ctl *imapconn.Alarm

	// acct is the Account that opened this folder, or nil for a session
	// of its own (Dial): then Close leaves the connection to the account.
	acct *Account

	mu     sync.Mutex
	reader *messageReader // the open reader of Open, if any
	closed bool           // Close or Abort was called
}

// Compile-time checks of the interfaces that Mailbox implements.
var (
	_ mailaccess.Mailbox  = (*Mailbox)(nil)
	_ driver.Mover        = (*Mailbox)(nil)
	_ driver.Folders      = (*Mailbox)(nil)
	_ driver.Watcher      = (*Mailbox)(nil)
	_ driver.Describer    = (*Mailbox)(nil)
	_ driver.Prefetcher   = (*Mailbox)(nil)
	_ driver.AfterLister  = (*Mailbox)(nil)
	_ driver.WindowLister = (*Mailbox)(nil)
)

// idleRestartInterval is how long one IDLE runs before Wait ends it and
// starts another: below the 29 minutes of RFC 2177 section 3 (and below
// go-imap's own 28-minute restart), and a regular check that the server
// still answers.
const idleRestartInterval = 20 * time.Minute

// bound says how a guard bounds an operation.
type bound int

const (
	// boundTotal: the whole operation within Options.Timeout.
	boundTotal bound = iota
	// boundStall: no more than Options.Timeout without a byte moving.
	boundStall
)

// guard bounds one operation by its context and by Options.Timeout. go-imap
// has no context, so both end the operation by killing the connection,
// which fails every pending command.
//
// A guard is a value: beginning and ending one allocates nothing. The
// context is bound to the connection (imapconn.Conn.Bind, whose
// registration with the context serves every operation of a session that
// uses it), the total bound is the session's Alarm.
type guard struct {
	m    *Mailbox
	bind imapconn.Binding
	// stop ends a registration of the guard's own, for a guard begun
	// while another one had the connection's binding.
	stop  func() bool
	total bool // m.total is armed
	stall bool // the stall watchdog is on
}

// begin starts the guard of one operation: ctx, and Options.Timeout as b
// says. A negative Options.Timeout leaves ctx as the only bound.
func (m *Mailbox) begin(ctx context.Context, b bound) guard {
	g := guard{m: m}
	var ok bool
	if g.bind, ok = m.conn.Bind(ctx); !ok {
		g.stop = context.AfterFunc(ctx, func() { m.conn.Kill(mailerr.ContextErr(ctx)) })
	}
	switch d := m.opts.Timeout; {
	case d <= 0:
	case b == boundTotal:
		m.total.Arm(d)
		g.total = true
	case b == boundStall:
		m.conn.Watch(d)
		g.stall = true
	}
	return g
}

// settleOp reads the batched fetches in flight to their end before
// another command is sent (go-imap answers commands in order, and a
// message literal that nobody reads holds up every later answer). With
// end, WillOpen's announcement ends too.
func (m *Mailbox) settleOp(ctx context.Context, op string, end bool) error {
	m.pf.mu.Lock()
	busy := len(m.pf.windows) > 0
	m.pf.mu.Unlock()
	if !busy {
		if end {
			m.settleFor(true)
		}
		return nil
	}
	g := m.begin(ctx, boundStall)
	defer g.end()
	return m.settleFor(end)
}

// control bounds a wait for the control part of a response (status
// lines, the items of a FETCH before and after its literal) by
// Options.Timeout in total, however slowly bytes trickle in, until
// endControl. Message literals are bounded by the stall watchdog of the
// operation's guard instead. The bound is the session's Alarm m.ctl: a
// wait costs no timer or closure of its own.
func (m *Mailbox) control() {
	if d := m.opts.Timeout; d > 0 {
		m.ctl.Arm(d)
	}
}

// endControl ends the bound started by control.
func (m *Mailbox) endControl() { m.ctl.Disarm() }

// end ends the guard. A second call does nothing.
func (g *guard) end() {
	if g.stop != nil {
		g.stop()
		g.stop = nil
	}
	g.bind.Unbind()
	g.bind = imapconn.Binding{}
	if g.total {
		g.m.total.Disarm()
		g.total = false
	}
	if g.stall {
		g.m.conn.Unwatch()
		g.stall = false
	}
}

// ready returns an error when the session cannot run op: it was closed,
// its connection was lost, a reader of Open is still open, or ctx has
// already ended (then ErrConnection with ctx's error, and the session
// stays usable).
func (m *Mailbox) ready(ctx context.Context, op string) error {
	m.mu.Lock()
	closed, reading := m.closed, m.reader != nil
	m.mu.Unlock()
	if closed {
		return mailerr.New(op, mailaccess.ErrConnection, "", errSessionClosed)
	}
	if reason := m.conn.Reason(); reason != nil {
		return m.connError(op, reason)
	}
	if reading {
		return mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("the reader returned by Open must be closed first"))
	}
	if ctx.Err() != nil {
		return ctxError(op, ctx)
	}
	return nil
}

// Name returns "imap://user@host/folder": the user escaped as URL userinfo,
// the host lower-cased without the port, the folder path-escaped. It holds
// no credential, and neither the port nor the TLS mode.
func (m *Mailbox) Name() string { return m.name }

// Describe reports the protocol "imap", the folder's UIDVALIDITY (in
// decimal) as the UID epoch, and the capabilities the server announced
// after login.
func (m *Mailbox) Describe() driver.Description {
	return driver.Description{
		Protocol:     "imap",
		UIDEpoch:     strconv.FormatUint(uint64(m.uidValidity), 10),
		Capabilities: slices.Clone(m.capList),
	}
}

// makeUID returns the mailaccess.UID of uid in the current epoch.
func (m *Mailbox) makeUID(uid imap.UID) mailaccess.UID {
	return mailaccess.UID(strconv.FormatUint(uint64(m.uidValidity), 10) + "/" + strconv.FormatUint(uint64(uid), 10))
}

// parseUID splits a mailaccess.UID made by makeUID. current is false when
// its UIDVALIDITY is not the folder's current one.
func (m *Mailbox) parseUID(op string, u mailaccess.UID) (uid imap.UID, current bool, err error) {
	v, n, ok := strings.Cut(string(u), "/")
	validity, err1 := strconv.ParseUint(v, 10, 32)
	num, err2 := strconv.ParseUint(n, 10, 32)
	if !ok || err1 != nil || err2 != nil || num == 0 || validity == 0 {
		return 0, false, mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("not an IMAP UID of the form UIDVALIDITY/UID: "+strconv.Quote(safetext.Sanitize(string(u)))))
	}
	return imap.UID(num), uint32(validity) == m.uidValidity, nil
}

// unilateralHandler receives what the server says outside the answers to
// our commands. It runs on go-imap's reader goroutine and must never call
// the client (go-imap issue #668): it only signals.
func (m *Mailbox) unilateralHandler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { m.signal() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				m.arrivals.Store(true)
				m.signal()
			}
		},
		// A FETCH response that no command claimed. go-imap routes here a
		// UID FETCH answer whose UID follows the body literal (it matches
		// answers by a UID read before any literal), so a body seen here
		// means "the server answered, but not in a way we could match",
		// never "the message is gone". The body is drained, which is also
		// what lets go-imap's reader go on.
		Fetch: func(msg *imapclient.FetchMessageData) {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if _, ok := item.(imapclient.FetchItemDataBodySection); ok {
					m.strays.Add(1)
				}
			}
		},
	}
}

func (m *Mailbox) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// List returns the folder's messages in ascending UID order, from
// UID FETCH 1:* (UID RFC822.SIZE), with INTERNALDATE when
// Options.ListDates is set. An empty folder gives an empty list (also
// from a server that refuses "1:*" there). Each UID is "UIDVALIDITY/UID".
// List ends any announcement of WillOpen.
//
// Options.Timeout bounds each stall, and the whole answer is bounded by
// twice Options.Timeout plus one millisecond per message that the folder
// holds (so a server that trickles bytes cannot stretch it for ever).
func (m *Mailbox) List(ctx context.Context) ([]mailaccess.MessageInfo, error) {
	const op = opList
	if err := m.ready(ctx, op); err != nil {
		return nil, m.warn(op, err)
	}
	list, err := m.list(ctx, op, 0)
	return list, m.warn(op, err)
}

// ListAfter lists the messages whose UIDs come after after, in ascending
// UID order (driver.AfterLister). When after is of the folder's
// current UIDVALIDITY and the server's UIDNEXT (from SELECT, and no new
// message reported since) shows that no message came after it, nothing
// is sent at all; otherwise it sends UID FETCH <after+1>:* (UID
// RFC822.SIZE [INTERNALDATE]) and drops the messages up to after (for
// "n:*" with n above every UID, a server returns the last message). So a
// run that finds no new mail costs no round trip after Dial, whatever the
// size of the folder.
//
// An empty after, or one of another UIDVALIDITY, lists every message, as
// List does. A malformed after is ErrInvalidArgument. ListAfter ends any
// announcement of WillOpen. What ListAfter sees is what the server has
// reported up to its last answer: a message that arrives after that is
// listed by a later call.
func (m *Mailbox) ListAfter(ctx context.Context, after mailaccess.UID) ([]mailaccess.MessageInfo, error) {
	const op = opList
	if err := m.ready(ctx, op); err != nil {
		return nil, m.warn(op, err)
	}
	if after == "" {
		list, err := m.list(ctx, op, 0)
		return list, m.warn(op, err)
	}
	uid, current, err := m.parseUID(op, after)
	if err != nil {
		return nil, m.warn(op, err)
	}
	if !current {
		list, err := m.list(ctx, op, 0)
		return list, m.warn(op, err)
	}
	if uid == math.MaxUint32 || (m.uidNext != 0 && !m.arrivals.Load() && uid+1 >= m.uidNext) {
		if err := m.settleOp(ctx, op, true); err != nil {
			return nil, m.warn(op, err)
		}
		select {
		case <-m.changed:
		default:
		}
		m.listed = m.listed[:0]
		m.log.Debug("imap list after: nothing new", "after", string(after), "uidnext", uint32(m.uidNext))
		return []mailaccess.MessageInfo{}, nil
	}
	list, err := m.list(ctx, op, uid+1)
	return list, m.warn(op, err)
}

// ListWindow lists the messages after the UID after a window at a time
// (driver.WindowLister): it sends UID FETCH <after+1>:<after+n> (UID
// RFC822.SIZE [INTERNALDATE]), a range of n UIDs, while that range ends
// before the server's UIDNEXT (from SELECT, or the highest UID listed),
// and otherwise UID FETCH <after+1>:*, the last window, whose next is "".
// An empty after, or one of another UIDVALIDITY, starts from the first
// message. Like ListAfter, it ends any announcement of WillOpen.
func (m *Mailbox) ListWindow(ctx context.Context, after mailaccess.UID, n int) ([]mailaccess.MessageInfo, mailaccess.UID, error) {
	const op = opList
	if err := m.ready(ctx, op); err != nil {
		return nil, "", m.warn(op, err)
	}
	from := imap.UID(1)
	if after != "" {
		uid, current, err := m.parseUID(op, after)
		if err != nil {
			return nil, "", m.warn(op, err)
		}
		if current {
			if uid == math.MaxUint32 {
				list, err := m.ListAfter(ctx, after)
				return list, "", err
			}
			from = uid + 1
		}
	}
	n = max(n, 1)
	if m.uidNext == 0 || uint64(from)+uint64(n) >= uint64(m.uidNext) {
		list, err := m.list(ctx, op, from)
		return list, "", m.warn(op, err)
	}
	to := from + imap.UID(n) - 1
	list, err := m.listRange(ctx, op, from, to)
	if err != nil {
		return nil, "", m.warn(op, err)
	}
	return list, m.makeUID(to), nil
}

// Count returns the number of messages in the folder, as the server last
// reported it (SELECT, then EXISTS and EXPUNGE responses).
func (m *Mailbox) Count() int {
	n, _ := m.numMessages()
	return int(n)
}

// list sends UID FETCH <from>:* (UID RFC822.SIZE [INTERNALDATE]), from 1
// when from is 0, and returns the messages from from on, in UID order.
func (m *Mailbox) list(ctx context.Context, op string, from imap.UID) ([]mailaccess.MessageInfo, error) {
	return m.listRange(ctx, op, from, 0)
}

// listRange is list of the UIDs from from to to (to 0: "*").
func (m *Mailbox) listRange(ctx context.Context, op string, from, to imap.UID) ([]mailaccess.MessageInfo, error) {
	if err := m.settleOp(ctx, op, true); err != nil {
		return nil, err
	}
	if from == 0 {
		from = 1
	}
	// Everything the server reported so far is in this answer.
	select {
	case <-m.changed:
	default:
	}
	m.arrivals.Store(false)
	g := m.begin(ctx, boundStall)
	defer g.end()
	n, _ := m.numMessages()
	if m.opts.Timeout > 0 {
		total := 2*m.opts.Timeout + time.Duration(n)*time.Millisecond
		limit := time.AfterFunc(total, func() { m.conn.Kill(&mailerr.TimeoutError{After: total}) })
		defer limit.Stop()
	}

	// Always asked, even when the count of messages says the folder is
	// empty: that count comes from EXISTS and EXPUNGE responses, which
	// some servers get wrong.
	cmd := m.client.Fetch(imap.UIDSet{{Start: from, Stop: to}}, &imap.FetchOptions{
		UID: true, RFC822Size: true, InternalDate: m.opts.ListDates,
	})
	// The answers come in sequence order, which is UID order; a server
	// that repeats a message (an unsolicited FETCH of its flags during
	// the listing) or strays from that order is handled after. The UIDs
	// and sizes go to listed, the rest to infos, in the same order.
	var (
		listed []listedMsg
		infos  []mailaccess.MessageInfo
	)
	switch {
	case from == 1 && to == 0:
		// A whole listing: every message.
		listed, infos = make([]listedMsg, 0, n), make([]mailaccess.MessageInfo, 0, n)
	case to != 0:
		// A window: at most its range, or the whole folder.
		k := min(uint32(to-from)+1, n)
		listed, infos = make([]listedMsg, 0, k), make([]mailaccess.MessageInfo, 0, k)
	}
	sorted := true
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		info := mailaccess.MessageInfo{Size: -1}
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataRFC822Size:
				info.Size = it.Size
			case imapclient.FetchItemDataInternalDate:
				info.Date = it.Time
			}
		}
		if uid >= from && (to == 0 || uid <= to) {
			if k := len(listed); k > 0 && listed[k-1].uid >= uid {
				sorted = false
			}
			listed = append(listed, listedMsg{uid: uid, size: info.Size})
			infos = append(infos, info)
		}
	}
	if err := cmd.Close(); err != nil {
		var ie *imap.Error
		if n, ok := m.numMessages(); errors.As(err, &ie) && ok && n == 0 && len(listed) == 0 {
			// Some servers refuse "1:*" in an empty folder.
			m.listed = m.listed[:0]
			return []mailaccess.MessageInfo{}, nil
		}
		return nil, m.fail(op, err, nil)
	}
	if !sorted {
		listed, infos = mergeListing(listed, infos)
	}
	m.setUIDs(infos, listed)
	m.listed = listed
	if k := len(listed); k > 0 && listed[k-1].uid >= m.uidNext {
		m.uidNext = listed[k-1].uid + 1
	}
	out := infos
	if out == nil {
		out = []mailaccess.MessageInfo{}
	}
	m.log.Debug("imap listed", "op", op, "from", uint32(from), "to", uint32(to), "messages", len(out))
	return out, nil
}

// listedMsg is one message of a listing: its UID and RFC822.SIZE (-1
// when the server did not send it).
type listedMsg struct {
	uid  imap.UID
	size int64
}

// size returns the RFC822.SIZE of uid in the last listing; ok is false
// when uid is not in it.
func (m *Mailbox) size(uid imap.UID) (size int64, ok bool) {
	i, ok := slices.BinarySearchFunc(m.listed, uid, func(e listedMsg, u imap.UID) int { return cmp.Compare(e.uid, u) })
	if !ok {
		return 0, false
	}
	return m.listed[i].size, true
}

// mergeListing puts a listing that strayed from UID order (listed and
// infos, in the same order) in UID order and merges the repeats of a
// UID: what one answer lacks, another may have said.
func mergeListing(listed []listedMsg, infos []mailaccess.MessageInfo) ([]listedMsg, []mailaccess.MessageInfo) {
	type entry struct {
		uid  imap.UID
		info mailaccess.MessageInfo
	}
	entries := make([]entry, len(listed))
	for i := range listed {
		entries[i] = entry{listed[i].uid, infos[i]}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.uid, b.uid) })
	w := 0
	for _, e := range entries {
		if w > 0 && entries[w-1].uid == e.uid {
			prev := &entries[w-1].info
			if e.info.Size >= 0 {
				prev.Size = e.info.Size
			}
			if !e.info.Date.IsZero() {
				prev.Date = e.info.Date
			}
			continue
		}
		entries[w] = e
		w++
	}
	listed, infos = listed[:0], infos[:0]
	for _, e := range entries[:w] {
		listed = append(listed, listedMsg{uid: e.uid, size: e.info.Size})
		infos = append(infos, e.info)
	}
	return listed, infos
}

// uidBlock is the number of UIDs of a listing whose strings share one
// allocation.
const uidBlock = 64

// setUIDs sets the UID of each message of infos to "UIDVALIDITY/UID" (as
// makeUID makes it), from listed, which holds the same messages in the
// same order. The strings of uidBlock messages are made in one
// allocation rather than two each.
func (m *Mailbox) setUIDs(infos []mailaccess.MessageInfo, listed []listedMsg) {
	if len(infos) == 0 {
		return
	}
	prefix := strconv.AppendUint(nil, uint64(m.uidValidity), 10)
	prefix = append(prefix, '/')
	buf := make([]byte, 0, uidBlock*(len(prefix)+10))
	var ends [uidBlock]int
	for i := 0; i < len(infos); i += uidBlock {
		j := min(i+uidBlock, len(infos))
		buf = buf[:0]
		for k := i; k < j; k++ {
			buf = append(buf, prefix...)
			buf = strconv.AppendUint(buf, uint64(listed[k].uid), 10)
			ends[k-i] = len(buf)
		}
		block := string(buf)
		start := 0
		for k := i; k < j; k++ {
			infos[k].UID = mailaccess.UID(block[start:ends[k-i]])
			start = ends[k-i]
		}
	}
}

// warn logs err at Warn when it is not nil, and returns it.
func (m *Mailbox) warn(op string, err error) error {
	if err != nil {
		m.log.Warn("imap error", "op", op, "err", err)
	}
	return err
}

// numMessages is the message count that the server last reported for the
// selected folder; ok is false when go-imap has no selected folder.
//
// go-imap records the selected folder only after SELECT's Wait has
// returned, so until then the count that SELECT gave is used.
func (m *Mailbox) numMessages() (n uint32, ok bool) {
	mb := m.client.Mailbox()
	if mb == nil {
		return m.selectCount, m.uidValidity != 0
	}
	return mb.NumMessages, true
}

// Delete marks messages for deletion. Nothing is sent: the marks are kept
// here until Close commits them (UID-scoped), and Abort drops them. UIDs of
// another UIDVALIDITY name messages that are no longer in the folder and
// are ignored. A malformed UID is ErrInvalidArgument and marks nothing.
func (m *Mailbox) Delete(ctx context.Context, uids ...mailaccess.UID) error {
	const op = opDelete
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return mailerr.New(op, mailaccess.ErrConnection, "", errSessionClosed)
	}
	if reason := m.conn.Reason(); reason != nil {
		return m.connError(op, reason)
	}
	if ctx.Err() != nil {
		return ctxError(op, ctx)
	}
	add := make([]imap.UID, 0, len(uids))
	for _, u := range uids {
		uid, current, err := m.parseUID(op, u)
		if err != nil {
			return err
		}
		if current {
			add = append(add, uid)
		}
	}
	for _, uid := range add {
		m.marks[uid] = struct{}{}
	}
	m.log.Info("imap delete marked", "messages", len(add), "marked", len(m.marks))
	return nil
}

// Close commits the deletion marks and logs out; a folder opened by
// Account.Open leaves the connection to the account instead of logging
// out.
//
// With marks, it sends UID STORE <uids> +FLAGS.SILENT (\Deleted) and then
// UID EXPUNGE <uids> (RFC 4315 UIDPLUS, or IMAP4rev2), which removes those
// messages only, never others flagged \Deleted by another client. A server
// without UIDPLUS gets the flags only: Close then returns ErrUnsupported
// saying that the messages were flagged but not expunged (a plain EXPUNGE
// or CLOSE is never sent).
//
// Errors (of the operation "imap commit"): ErrCommitFailed when the server
// refused STORE or UID EXPUNGE, or the connection failed before UID
// EXPUNGE was sent (nothing was expunged); ErrCommitUnknown when the
// connection failed after UID EXPUNGE was sent. LOGOUT errors are
// ignored. The session ends in every case. Close on a nil *Mailbox (what
// Dial returns with an error) returns an error matching
// ErrInvalidArgument.
func (m *Mailbox) Close(ctx context.Context) error {
	const op = opCommit
	if m == nil {
		return mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("nil *imap.Mailbox: there is no session (did Dial fail?)"))
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return mailerr.New(op, mailaccess.ErrConnection, "", errSessionClosed)
	}
	m.closed = true
	r := m.reader
	m.mu.Unlock()
	if m.acct != nil {
		defer m.acct.release(m)
	} else {
		defer m.shutdown()
	}

	if r != nil {
		// Finishing the open reader keeps the session for the commit.
		r.finish(ctx)
	}
	if m.conn.Reason() == nil {
		_ = m.settleOp(ctx, op, true)
	}
	n := len(m.marks)
	err := m.commit(ctx, op)
	switch {
	case err != nil:
		m.log.Warn("imap commit failed", "marked", n, "err", err)
	case n > 0:
		m.log.Info("imap commit", "expunged", n)
	}
	if m.acct == nil && m.conn.Reason() == nil && ctx.Err() == nil {
		g := m.begin(ctx, boundTotal)
		_ = m.client.Logout().Wait()
		g.end()
	}
	return err
}

// commit sends the deletion marks, as Close describes.
func (m *Mailbox) commit(ctx context.Context, op string) error {
	if len(m.marks) == 0 {
		return nil
	}
	uids := make([]imap.UID, 0, len(m.marks))
	for uid := range m.marks {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	set := imap.UIDSetNum(uids...)
	n := strconv.Itoa(len(uids))

	notCommitted := func(err error) error {
		return mailerr.Recast(err, mailaccess.ErrCommitFailed, nil)
	}
	if reason := m.conn.Reason(); reason != nil {
		return notCommitted(m.connError(op, reason))
	}
	if ctx.Err() != nil {
		return notCommitted(ctxError(op, ctx))
	}

	g := m.begin(ctx, boundTotal)
	err := m.client.Store(set, &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted},
	}, nil).Close()
	g.end()
	if err != nil {
		return notCommitted(m.fail(op, err, nil))
	}

	if !m.caps.Has(imap.CapUIDPlus) {
		return mailerr.New(op, mailaccess.ErrUnsupported, "",
			errors.New(n+" message(s) flagged \\Deleted but not expunged: the server has no UIDPLUS, so UID EXPUNGE is impossible and a plain EXPUNGE would also remove other clients' messages"))
	}

	g = m.begin(ctx, boundTotal)
	err = m.client.UIDExpunge(set).Close()
	g.end()
	if err != nil {
		e := m.fail(op, err, nil)
		if errors.Is(e, mailaccess.ErrConnection) {
			return mailerr.Recast(e, mailaccess.ErrCommitUnknown, nil)
		}
		return notCommitted(e)
	}
	clear(m.marks)
	return nil
}

// Abort ends the session at once: the connection is closed without
// EXPUNGE or LOGOUT, so the deletion marks (which never left this process)
// are dropped. It is safe to call at any time, from any goroutine, and
// more than once, also on a nil *Mailbox (what Dial returns with an
// error); it always returns nil. For a folder opened by Account.Open,
// closing the connection ends the account's session too.
func (m *Mailbox) Abort() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.shutdown()
	return nil
}

// shutdown closes the connection and releases go-imap's reader goroutine:
// an open literal must be read to its end or to an error first, or
// go-imap's Close would wait for ever.
func (m *Mailbox) shutdown() {
	m.conn.Kill(errSessionClosed)
	m.mu.Lock()
	r := m.reader
	m.mu.Unlock()
	if r != nil {
		r.abort()
	}
	m.releaseWindows()
	d := m.opts.Timeout
	if d <= 0 {
		d = dialopt.DefaultTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.client.Closed():
	case <-t.C:
	}
}
