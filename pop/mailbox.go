package pop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	pop3 "github.com/knadh/go-pop3"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

var (
	_ mailaccess.Mailbox = (*Mailbox)(nil)
	_ driver.Describer   = (*Mailbox)(nil)
)

// Limits of the responses that are buffered (UIDL and LIST): generous
// enough for a mail drop of a million messages.
const maxListingBytes = 64 << 20

// readSlack is what a message may exceed its listed size by while it
// streams, beyond twice that size, before the server counts as lying.
const readSlack = 64 << 10

// Mailbox is one POP3 session in the TRANSACTION state. It implements
// mailaccess.Mailbox and driver.Describer.
//
// A Mailbox is driven by one goroutine; Abort alone may also be called
// from another goroutine, to end the session at once.
type Mailbox struct {
	name string
	o    mailaccess.DialOptions
	w    *popwire.Wire
	g    *popwire.Gate
	c    *pop3.Conn

	caps       caps
	uidl       bool // UIDs are UIDL values (else session-scoped "#n")
	expire0    bool
	pipelining bool

	listed     bool // byUID is filled
	prefetched bool // list holds a listing that List has not returned yet
	list       []mailaccess.MessageInfo
	byUID      map[mailaccess.UID]entry
	marked     map[int]bool // message numbers marked for deletion
	retrieved  int          // messages retrieved (matters with EXPIRE 0)
	rd         *messageReader
	plan       []planned         // messages the caller will Open next (WillOpen)
	inflight   []planned         // RETRs sent whose answers are not read yet
	cmd        []byte            // a command line being sent, reused
	dead       *mailaccess.Error // the failure that ended the session
	log        *slog.Logger

	mu       sync.Mutex
	ended    bool
	aborted  bool
	closeErr error
}

// entry is one message of the session's listing.
type entry struct {
	num  int
	size int64
}

// afterLogin reads the capabilities again (RFC 2449 section 5: they may
// change after login) and, on a server without CAPA, lists the mail drop
// to learn whether UIDL works.
func (m *Mailbox) afterLogin(ctx context.Context) error {
	end, err := m.begin(ctx, opCapabilities)
	if err != nil {
		return err
	}
	defer end.Unbind()
	if m.caps.known {
		res, err := m.run(opCapabilities, []command{{name: "CAPA", multi: true, maxTotal: maxCapaBytes}})
		if err != nil {
			return err
		}
		if res[0].ok {
			var lines []string
			for l := range bytes.Lines(res[0].body.Bytes()) {
				lines = append(lines, string(popwire.TrimEOL(l)))
			}
			m.caps = parseCaps(lines)
		}
	}
	m.expire0 = m.caps.expireZero()
	m.pipelining = m.caps.has("PIPELINING")
	m.uidl = !m.caps.known || m.caps.has("UIDL")
	if !m.caps.known {
		if err := m.fetchListing(); err != nil {
			return err
		}
		m.prefetched = true
	}
	return nil
}

// Name returns "pop3://user@host": the user escaped as URL userinfo, the
// host lower-cased (an IPv6 address in brackets), without the port, the
// TLS mode or any credential, so that it stays the same when only the
// connection settings change.
func (m *Mailbox) Name() string { return m.name }

// Capabilities returns the server's CAPA lines as announced after login
// (before login when the server did not answer CAPA again), sanitized; nil
// for a server without CAPA.
func (m *Mailbox) Capabilities() []string {
	return append([]string(nil), m.caps.lines...)
}

// Describe reports what the server said about itself: Protocol "pop3";
// SessionUIDs when the server has no UIDL (UIDs are then "#n", valid in
// this session only); DeletesOnRetrieval when it announced "EXPIRE 0"
// after login (RFC 2449 section 6.7), or before login if it did not
// answer CAPA after login; LoginDelay from "LOGIN-DELAY n" (RFC 2449
// section 6.8); and the CAPA lines.
func (m *Mailbox) Describe() driver.Description {
	return driver.Description{
		Protocol:           "pop3",
		SessionUIDs:        !m.uidl,
		DeletesOnRetrieval: m.expire0,
		LoginDelay:         m.caps.loginDelay(),
		Capabilities:       m.Capabilities(),
	}
}

// errEnded is the cause of every call after Close or Abort.
var errEnded = errors.New("the session has ended")

// begin starts a call: it closes a message reader still open, refuses a
// session that has ended or failed, and binds ctx to the connection until
// end is called.
func (m *Mailbox) begin(ctx context.Context, op string) (end popwire.Binding, err error) {
	m.mu.Lock()
	ended := m.ended
	m.mu.Unlock()
	if ended {
		return popwire.Binding{}, mailerr.New(op, mailaccess.ErrConnection, "", errEnded)
	}
	if ctx.Err() != nil && m.dead == nil {
		return popwire.Binding{}, ctxErr(op, ctx)
	}
	if m.rd != nil {
		// A reader left open is drained under this call's context.
		_ = m.rd.closeWith(ctx)
	}
	if m.dead != nil {
		return popwire.Binding{}, m.deadErr(op)
	}
	return m.w.Bind(ctx), nil
}

// deadErr is the error of a call on a session that failed earlier.
func (m *Mailbox) deadErr(op string) *mailaccess.Error {
	return mailerr.New(op, mailaccess.ErrConnection, "", fmt.Errorf("session unusable after an earlier failure: %w", m.dead))
}

// fail records a wire failure as the end of the session.
func (m *Mailbox) fail(op string, err error) *mailaccess.Error {
	e := wireErr(op, err)
	if m.dead == nil {
		m.dead = e
	}
	return e
}

// command is one POP3 command for run.
type command struct {
	name     string
	arg      int // message number, 0 for none
	multi    bool
	maxTotal int64 // limit of a multi-line body
}

// appendLine appends the command line, with its CRLF, to b.
func (c command) appendLine(b []byte) []byte {
	b = append(b, c.name...)
	if c.arg > 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(c.arg), 10)
	}
	return append(b, '\r', '\n')
}

// result is the outcome of one command: +OK (with the body of a
// multi-line response) or a -ERR reply.
type result struct {
	ok   bool
	body *bytes.Buffer
	err  reply
}

// run sends cmds through go-pop3 and returns their results in order. With
// PIPELINING they are all sent in one write while the answers are read;
// otherwise one at a time. A -ERR is a result;
// a transport or protocol failure is an error and ends the session.
func (m *Mailbox) run(op string, cmds []command) ([]result, error) {
	res := make([]result, 0, len(cmds))
	if !m.pipelining || len(cmds) == 1 {
		for _, c := range cmds {
			m.g.Expect(popwire.MaxListLine, c.maxTotal)
			var (
				body *bytes.Buffer
				err  error
			)
			if c.arg > 0 {
				body, err = m.c.Cmd(c.name, false, c.arg)
			} else {
				body, err = m.c.Cmd(c.name, false)
			}
			r, err := m.outcome(op, body, err)
			if err == nil && r.ok && c.multi {
				r, err = m.readBody(op, c)
			}
			if err != nil {
				return res, err
			}
			res = append(res, r)
		}
		return res, nil
	}
	// All the commands leave in one write, from another goroutine, while
	// this one reads the answers: one round trip whatever their number,
	// and no deadlock when both directions' buffers fill.
	var batch []byte
	for _, c := range cmds {
		batch = c.appendLine(batch)
	}
	wait := m.w.WriteAsync(batch)
	for _, c := range cmds {
		m.g.Expect(popwire.MaxListLine, c.maxTotal)
		r, err := m.outcome(op, nil, m.g.ReadStatus())
		if err == nil && r.ok && c.multi {
			r, err = m.readBody(op, c)
		}
		if err != nil {
			// The session is over: stop the writer too.
			_ = m.w.Close()
			_ = wait()
			return res, err
		}
		res = append(res, r)
	}
	if err := wait(); err != nil {
		return res, m.fail(op, err)
	}
	return res, nil
}

// readBody reads the body of the multi-line answer to c, whose +OK was
// just read. The Wire reads it rather than go-pop3, which would copy it
// line by line.
func (m *Mailbox) readBody(op string, c command) (result, error) {
	body, err := m.w.ReadLines(popwire.MaxListLine, c.maxTotal)
	if err != nil {
		return result{}, m.fail(op, err)
	}
	return result{ok: true, body: bytes.NewBuffer(body)}, nil
}

// outcome classifies what go-pop3 returned, using the Gate's view of the
// status line: go-pop3's own errors are plain strings.
func (m *Mailbox) outcome(op string, body *bytes.Buffer, err error) (result, error) {
	if werr := m.w.Err(); werr != nil {
		return result{}, m.fail(op, werr)
	}
	switch {
	case m.g.StatusErr():
		return result{err: parseErr(m.g.Status())}, nil
	case m.g.StatusOK() && err == nil:
		return result{ok: true, body: body}, nil
	}
	// Cannot happen while the Gate checks every status line; kept so that
	// a surprise is a clear error rather than a desynchronized session.
	return result{}, m.fail(op, m.w.Fail(popwire.Protocolf("unexpected response state (status %q)", safetext.Sanitize(m.g.Status()))))
}

// List returns the messages of the mail drop in the server's order, with
// UIDL as the UID (or "#n", valid in this session only, on a server
// without UIDL: see Describe) and the size from LIST. Date is zero: POP3
// has no arrival time. UIDL and LIST are sent once each (pipelined when
// the server allows). A malformed line, a duplicate UID or a UIDL that
// does not match LIST is mailaccess.ErrProtocol.
func (m *Mailbox) List(ctx context.Context) (_ []mailaccess.MessageInfo, err error) {
	defer func() { _ = logWarn(m.log, err) }()
	end, err := m.begin(ctx, opList)
	if err != nil {
		return nil, err
	}
	defer end.Unbind()
	if err := m.settle(opList); err != nil {
		return nil, err
	}
	if !m.prefetched || len(m.marked) > 0 {
		if err := m.fetchListing(); err != nil {
			return nil, err
		}
	}
	m.prefetched = false
	m.log.Debug("listed", "count", len(m.list))
	return append([]mailaccess.MessageInfo(nil), m.list...), nil
}

// ensureListing lists the mail drop if this session has not yet.
func (m *Mailbox) ensureListing() error {
	if m.listed {
		return nil
	}
	return m.fetchListing()
}

// fetchListing sends UIDL (when the server has it) and LIST and replaces
// the session's listing.
func (m *Mailbox) fetchListing() error {
	const op = opList
	cmds := []command{{name: "LIST", multi: true, maxTotal: maxListingBytes}}
	if m.uidl {
		cmds = append([]command{{name: "UIDL", multi: true, maxTotal: maxListingBytes}}, cmds...)
	}
	res, err := m.run(op, cmds)
	if err != nil {
		return err
	}
	var uids map[int]string
	if m.uidl {
		u := res[0]
		res = res[1:]
		switch {
		case u.ok:
			if uids, err = parseUIDL(u.body.Bytes()); err != nil {
				return mailerr.New(op, mailaccess.ErrProtocol, "", err)
			}
		case !m.caps.known && !u.err.isSys():
			// A server without CAPA that refuses UIDL has no UIDL.
			m.uidl = false
		default:
			return serverErr(op, mailaccess.ErrServer, u.err)
		}
	}
	if !res[0].ok {
		return serverErr(op, mailaccess.ErrServer, res[0].err)
	}
	sizes, order, err := parseLIST(res[0].body.Bytes())
	if err != nil {
		return mailerr.New(op, mailaccess.ErrProtocol, "", err)
	}
	if uids != nil && len(uids) != len(sizes) {
		return mailerr.New(op, mailaccess.ErrProtocol, "", fmt.Errorf("UIDL lists %d messages and LIST %d", len(uids), len(sizes)))
	}
	list := make([]mailaccess.MessageInfo, 0, len(order))
	byUID := make(map[mailaccess.UID]entry, len(order))
	for _, n := range order {
		var uid mailaccess.UID
		if uids != nil {
			u, ok := uids[n]
			if !ok {
				return mailerr.New(op, mailaccess.ErrProtocol, "", fmt.Errorf("message %d is in LIST but not in UIDL", n))
			}
			uid = mailaccess.UID(u)
		} else {
			uid = mailaccess.UID("#" + strconv.Itoa(n))
		}
		list = append(list, mailaccess.MessageInfo{UID: uid, Size: sizes[n]})
		byUID[uid] = entry{num: n, size: sizes[n]}
	}
	m.list, m.byUID, m.listed = list, byUID, true
	return nil
}

// maxUIDLen is the longest UIDL value accepted. RFC 1939 says 70; some
// servers send more, which is harmless.
const maxUIDLen = 512

// parseUIDL parses the body of a UIDL response: "n uid" lines.
func parseUIDL(body []byte) (map[int]string, error) {
	hint := listingHint(body)
	uids := make(map[int]string, hint)
	seen := make(map[string]int, hint)
	lineNo := 0
	for l := range bytes.Lines(body) {
		lineNo++
		var f [2][]byte
		if fields(f[:], popwire.TrimEOL(l)) != 2 {
			return nil, fmt.Errorf("UIDL line %d is not \"number uid\"", lineNo)
		}
		n, ok := msgNum(string(f[0]))
		if !ok {
			return nil, fmt.Errorf("UIDL line %d has no valid message number", lineNo)
		}
		u := string(f[1])
		if len(u) > maxUIDLen || strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return nil, fmt.Errorf("UIDL line %d has a unique-id outside RFC 1939's characters or longer than %d", lineNo, maxUIDLen)
		}
		if _, dup := uids[n]; dup {
			return nil, fmt.Errorf("UIDL lists message %d twice", n)
		}
		if prev, dup := seen[u]; dup {
			return nil, fmt.Errorf("UIDL gives messages %d and %d the same unique-id", prev, n)
		}
		uids[n] = u
		seen[u] = n
	}
	return uids, nil
}

// parseLIST parses the body of a LIST response: "n size" lines (RFC 1939
// allows more after the size). It returns the sizes and the message
// numbers in the server's order.
func parseLIST(body []byte) (map[int]int64, []int, error) {
	hint := listingHint(body)
	sizes := make(map[int]int64, hint)
	order := make([]int, 0, hint)
	lineNo := 0
	for l := range bytes.Lines(body) {
		lineNo++
		var f [2][]byte
		if fields(f[:], popwire.TrimEOL(l)) < 2 {
			return nil, nil, fmt.Errorf("LIST line %d is not \"number size\"", lineNo)
		}
		n, ok := msgNum(string(f[0]))
		if !ok {
			return nil, nil, fmt.Errorf("LIST line %d has no valid message number", lineNo)
		}
		size, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil || size < 0 || !digits(string(f[1])) {
			return nil, nil, fmt.Errorf("LIST line %d has no valid size", lineNo)
		}
		if _, dup := sizes[n]; dup {
			return nil, nil, fmt.Errorf("LIST lists message %d twice", n)
		}
		sizes[n] = size
		order = append(order, n)
	}
	return sizes, order, nil
}

// listingHint is how many lines a listing body has, as the size to make
// its maps with (rather than growing them line by line), at most 1<<17 so
// that a body of garbage does not make large ones.
func listingHint(body []byte) int {
	return min(bytes.Count(body, []byte{'\n'}), 1<<17)
}

// fields puts the first len(f) fields of line (split as strings.Fields
// splits) into f and returns how many fields there are, counting at most
// one beyond len(f). Unlike strings.Fields, it makes nothing.
func fields(f [][]byte, line []byte) int {
	n := 0
	for field := range bytes.FieldsSeq(line) {
		if n == len(f) {
			return n + 1
		}
		f[n] = field
		n++
	}
	return n
}

func msgNum(s string) (int, bool) {
	if !digits(s) || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lookup finds a UID in the session's listing; a UID that is not there,
// or that this session marked for deletion, is mailaccess.ErrNotFound.
func (m *Mailbox) lookup(op string, uid mailaccess.UID) (entry, error) {
	e, ok := m.byUID[uid]
	if !ok {
		return entry{}, mailerr.New(op, mailaccess.ErrNotFound, "", fmt.Errorf("no message with UID %q in this session", safetext.Sanitize(string(uid))))
	}
	if m.marked[e.num] {
		return entry{}, mailerr.New(op, mailaccess.ErrNotFound, "", fmt.Errorf("message with UID %q is marked for deletion", safetext.Sanitize(string(uid))))
	}
	return e, nil
}

// Open retrieves the message with the given UID (RETR) and streams it:
// the bytes come straight from the connection, never buffered whole, and
// are exactly the message as the server stores it (dot-unstuffed, line
// terminators as sent, CRLF normally; the terminating "." line removed;
// a leading byte-order mark kept).
//
// A UID that is not in this session's listing (Open lists the mail drop
// first if List was not called), or that the server refuses with -ERR, is
// mailaccess.ErrNotFound; -ERR with a response code says more ([SYS/TEMP]
// is mailaccess.ErrUnavailable, [IN-USE] mailaccess.ErrInUse, another
// [SYS/...] mailaccess.ErrServer). While it streams, a message larger than
// twice its listed size plus 64 KiB is mailaccess.ErrProtocol (the server
// lied) and ends the session. The size limit of a fetch is the
// mailaccess.Fetcher's MaxSize, which checks the listed size and meters
// the stream.
//
// The reader must be closed before any other call; closing it early reads
// and discards the rest of the message, within the limits above. Reads
// are bounded by ctx and by the idle Timeout.
func (m *Mailbox) Open(ctx context.Context, uid mailaccess.UID) (_ io.ReadCloser, err error) {
	const op = opFetch
	defer func() { _ = logWarn(m.log, err) }()
	if err := mailerr.CheckArg("uid", string(uid)); err != nil {
		return nil, mailerr.WithOp(op, err)
	}
	end, err := m.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	// On success the reader keeps ctx bound until the message ends, so
	// that its reads cost no binding each.
	kept := false
	defer func() {
		if !kept {
			end.Unbind()
		}
	}()
	if err := m.ensureListing(); err != nil {
		return nil, err
	}
	e, err := m.lookup(op, uid)
	if err != nil {
		return nil, err
	}
	res, err := m.retr(op, planned{uid: uid, e: e})
	if err != nil {
		return nil, err
	}
	if !res.ok {
		m.logRetrieve(uid, e.size, 0, "refused")
		if res.err.isSys() || res.err.code == "IN-USE" || res.err.code == "LOGIN-DELAY" {
			return nil, serverErr(op, mailaccess.ErrServer, res.err)
		}
		return nil, mailerr.New(op, mailaccess.ErrNotFound, res.err.display(), nil)
	}
	m.retrieved++
	r := &messageReader{m: m, ctx: ctx, uid: uid, size: e.size, bound: end}
	m.w.StartDot(&r.dot, bodyLimit(e), r)
	m.rd = r
	kept = true
	return r, nil
}

// bodyLimit returns how many octets the body of RETR e may have before the
// server counts as lying (listedAs says why).
func bodyLimit(e entry) int64 {
	limit := e.size
	if limit > (1<<62-readSlack)/2 {
		return 1<<62 - readSlack
	}
	return 2*limit + readSlack
}

// listedAs describes the limit of bodyLimit for a message listed with
// that many octets.
type listedAs int64

func (n listedAs) String() string {
	return "listed with " + strconv.FormatInt(int64(n), 10) + " octets"
}

// messageReader streams one message; see Open. It is also the
// description of its body's limit (String), so that its DotReader needs
// nothing made for each message.
type messageReader struct {
	m      *Mailbox
	ctx    context.Context
	dot    popwire.DotReader
	uid    mailaccess.UID
	size   int64           // as listed
	bound  popwire.Binding // the binding of ctx made by Open, or none
	err    error
	closed bool
	logged bool
}

// String describes the limit of the message's body (see bodyLimit).
func (r *messageReader) String() string { return listedAs(r.size).String() }

// release ends the binding of the reader's context to the connection.
func (r *messageReader) release() {
	r.bound.Unbind()
	r.bound = popwire.Binding{}
}

// logEnd logs the retrieval's outcome, once.
func (r *messageReader) logEnd(outcome string) {
	if !r.logged {
		r.logged = true
		r.m.logRetrieve(r.uid, r.size, r.dot.N(), outcome)
	}
}

// logRetrieve logs one retrieval at Debug.
func (m *Mailbox) logRetrieve(uid mailaccess.UID, size, octets int64, outcome string) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	m.log.Debug("retrieved", "uid", string(uid), "size", size, "octets", octets, "outcome", outcome)
}

var errReaderClosed = errors.New("pop3: read on a closed message reader")

// Read reads the message under the context given to Open.
func (r *messageReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.bound == (popwire.Binding{}) {
		r.bound = r.m.w.Bind(r.ctx)
	}
	n, err := r.dot.Read(p)
	if err != nil {
		r.release()
	}
	if err != nil && err != io.EOF {
		r.err = r.m.fail(opFetch, err)
		r.logEnd("failed")
		_ = logWarn(r.m.log, r.err)
		return n, r.err
	}
	if err == io.EOF {
		r.logEnd("complete")
	}
	return n, err
}

// Close ends the reader. Before the end of the message it reads and
// discards the rest, so that the session can go on; if that fails, the
// session has ended and the error says why.
func (r *messageReader) Close() error { return r.closeWith(r.ctx) }

// closeWith closes the reader, draining the rest of the message under ctx.
func (r *messageReader) closeWith(ctx context.Context) error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.release()
	if r.m.rd == r {
		r.m.rd = nil
	}
	if r.err != nil {
		return nil
	}
	if r.dot.Done() {
		r.logEnd("complete")
		return nil
	}
	b := r.m.w.Bind(ctx)
	_, err := io.Copy(io.Discard, &r.dot)
	b.Unbind()
	if err != nil {
		r.err = r.m.fail(opFetch, err)
		r.logEnd("failed while draining after an early close")
		return logWarn(r.m.log, r.err)
	}
	r.logEnd("closed early, rest discarded")
	return nil
}

// Delete marks messages for deletion with DELE (RFC 1939 section 5); the
// server deletes them only when Close's QUIT succeeds, and Abort rolls the
// marks back. With PIPELINING the DELEs go in one round trip. A UID that
// is not in this session's listing is mailaccess.ErrNotFound and nothing
// is sent; a UID already marked is skipped. When the server refuses some
// DELEs, the others stay marked and the error (mailaccess.ErrServer) names
// the refused UIDs.
func (m *Mailbox) Delete(ctx context.Context, uids ...mailaccess.UID) (err error) {
	const op = opDelete
	defer func() { _ = logWarn(m.log, err) }()
	for _, uid := range uids {
		if err := mailerr.CheckArg("uid", string(uid)); err != nil {
			return mailerr.WithOp(op, err)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	end, err := m.begin(ctx, op)
	if err != nil {
		return err
	}
	defer end.Unbind()
	if err := m.settle(op); err != nil {
		return err
	}
	if err := m.ensureListing(); err != nil {
		return err
	}
	var (
		cmds    []command
		targets []mailaccess.UID
		missing []string
		queued  = make(map[int]bool)
	)
	for _, uid := range uids {
		e, ok := m.byUID[uid]
		switch {
		case !ok:
			missing = append(missing, strconv.Quote(safetext.Sanitize(string(uid))))
		case m.marked[e.num] || queued[e.num]:
		default:
			queued[e.num] = true
			cmds = append(cmds, command{name: "DELE", arg: e.num})
			targets = append(targets, uid)
		}
	}
	if len(missing) > 0 {
		return mailerr.New(op, mailaccess.ErrNotFound, "", fmt.Errorf("no message with UID %s in this session; nothing was marked", joinFew(missing)))
	}
	if len(cmds) == 0 {
		return nil
	}
	res, err := m.run(op, cmds)
	if err != nil {
		return err
	}
	var refused []string
	var first reply
	for i, r := range res {
		if r.ok {
			m.marked[cmds[i].arg] = true
			continue
		}
		if refused == nil {
			first = r.err
		}
		refused = append(refused, strconv.Quote(string(targets[i])))
	}
	m.log.Info("marked for deletion", "count", len(cmds)-len(refused), "refused", len(refused), "marked", len(m.marked))
	if len(refused) > 0 {
		e := serverErr(op, mailaccess.ErrServer, first)
		e.Err = fmt.Errorf("server refused DELE for %d of %d messages (UIDs %s); the others are marked", len(refused), len(cmds), joinFew(refused))
		return e
	}
	return nil
}

// joinFew joins up to ten items, then says how many more there are.
func joinFew(items []string) string {
	const max = 10
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}

// Close ends the session with QUIT, which commits the deletion marks (RFC
// 1939 section 6). It returns nil when the server answered +OK; an error
// matching mailaccess.ErrCommitFailed when it answered -ERR (the text is
// the server's) or when the session had already failed, so that QUIT was
// never sent and nothing was committed; and an error matching
// mailaccess.ErrCommitUnknown when the connection failed or timed out
// after QUIT was sent, so that the marks may or may not have been
// committed. Those errors are of the operation "pop3 commit". Without
// marks (and without messages retrieved from a server with EXPIRE 0)
// there is nothing to commit, and a failure is mailaccess.ErrConnection of
// the operation "pop3 logout". QUIT is sent even when nothing was marked.
// The connection is closed in every case; a second Close returns the
// first one's result. Close on a nil *Mailbox (what Dial returns with an
// error) returns an error matching mailaccess.ErrInvalidArgument.
func (m *Mailbox) Close(ctx context.Context) error {
	if m == nil {
		return errNilMailbox(opCommit)
	}
	m.mu.Lock()
	if m.ended {
		defer m.mu.Unlock()
		if m.aborted {
			return mailerr.New(opCommit, mailaccess.ErrConnection, "", errors.New("the session was aborted; nothing was committed"))
		}
		return m.closeErr
	}
	m.mu.Unlock()
	if m.rd != nil {
		_ = m.rd.closeWith(ctx)
	}
	pending := len(m.marked) > 0 || (m.expire0 && m.retrieved > 0)
	op := opLogout
	if pending {
		op = opCommit
	}
	err := m.quit(ctx, op, pending)
	outcome := "committed"
	switch {
	case err == nil && !pending:
		outcome = "nothing to commit"
	case errors.Is(err, mailaccess.ErrCommitUnknown):
		outcome = "unknown"
	case err != nil:
		outcome = "not committed"
	}
	m.log.Info("quit", "marked", len(m.marked), "commit", outcome)
	_ = logWarn(m.log, err)
	m.mu.Lock()
	if !m.ended {
		m.ended = true
		m.closeErr = err
	}
	m.mu.Unlock()
	_ = m.w.Close()
	return err
}

// errNilMailbox is the error of Close on a nil *Mailbox.
func errNilMailbox(op string) error {
	return mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("nil *pop.Mailbox: there is no session (did Dial fail?)"))
}

func (m *Mailbox) quit(ctx context.Context, op string, pending bool) error {
	// QUIT not sent: the server keeps every message.
	notSent := func(err error) error {
		if !pending {
			return err
		}
		return mailerr.Recast(err, mailaccess.ErrCommitFailed, nil)
	}
	if m.dead != nil {
		return notSent(m.deadErr(op))
	}
	if ctx.Err() != nil {
		return notSent(ctxErr(op, ctx))
	}
	b := m.w.Bind(ctx)
	if err := m.settle(op); err != nil {
		b.Unbind()
		return notSent(err)
	}
	m.g.Expect(popwire.MaxListLine, 0)
	qerr := m.c.Quit()
	b.Unbind()
	if werr := m.w.Err(); werr != nil {
		e := wireErr(op, werr)
		m.dead = e
		if !pending {
			return e
		}
		// QUIT was sent: the deletions may or may not have been committed.
		return mailerr.Recast(e, mailaccess.ErrCommitUnknown, nil)
	}
	st := m.g.Status()
	if strings.HasPrefix(st, "-ERR") {
		return asKind(serverErr(op, mailaccess.ErrCommitFailed, parseErr(st)), mailaccess.ErrCommitFailed)
	}
	if qerr != nil || !strings.HasPrefix(st, "+OK") {
		return mailerr.New(op, mailaccess.ErrCommitUnknown, "", errors.New("no valid answer to QUIT"))
	}
	return nil
}

// Abort ends the session at once: it closes the connection without QUIT,
// so the server rolls back every deletion mark (RFC 1939 section 6). It
// never fails, may be called more than once, after Close, and from another
// goroutine than the one driving the Mailbox (a call in progress then
// fails with mailaccess.ErrConnection). On a nil *Mailbox (what Dial
// returns with an error) it does nothing and returns nil.
func (m *Mailbox) Abort() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return nil
	}
	m.ended = true
	m.aborted = true
	_ = m.w.Close()
	m.log.Info("aborted without QUIT; the server rolls back every deletion mark")
	return nil
}
