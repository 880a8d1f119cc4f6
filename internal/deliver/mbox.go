package deliver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrMboxLocked is returned (wrapped) by Mbox.Deliver when another program
// holds the mbox's lock for longer than Mbox.LockTimeout.
var ErrMboxLocked = errors.New("mbox is locked by another program")

// Mbox appends messages to an mbox file in the mboxrd format: each message
// is preceded by an RFC 4155 "From " separator line (the envelope sender
// and an asctime date, in UTC), every line of the message that matches
// ^>*From (">From", ">>From", ... included) gets one more '>', and the
// message is followed by an empty line. Line ends inside the message are
// kept as they arrive (CRLF from a mail server); the lines that Mbox adds
// end with LF.
//
// Each Deliver locks the file (flock, and a dotlock FILE.lock created with
// O_EXCL, the convention of mail readers that do not use flock), appends
// the message, fsyncs the file, and unlocks: other programs may read and
// rewrite the mbox between two deliveries. A Deliver that fails (reading
// the message, writing, or syncing) truncates the file back to the size it
// had, so no partial message stays. Batch delivers in groups instead:
// one lock and one fsync for many messages (see MboxBatch).
type Mbox struct {
	path string
	// LockTimeout bounds how long Deliver waits for a lock that another
	// program holds; 0 means ten seconds.
	LockTimeout time.Duration
	// failAfter, when positive, makes the write fail after that many
	// bytes, for tests.
	failAfter int64
}

// OpenMbox creates the mbox file at path if it is missing (mode 0600, with
// its directory synced) and checks that an existing file is an mbox: a
// regular file, empty or starting with "From ". It takes no lock: Deliver
// does, for each message.
func OpenMbox(path string) (*Mbox, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err = f.Close(); err != nil {
			return nil, fmt.Errorf("mbox %s: %w", path, err)
		}
		if err = syncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("mbox %s: %w", path, err)
		}
		return &Mbox{path: path}, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("mbox %s: not a regular file", path)
	}
	var head [5]byte
	n, err := io.ReadFull(f, head[:])
	if n > 0 && string(head[:n]) != "From "[:n] || n == 5 && string(head[:]) != "From " {
		return nil, fmt.Errorf("mbox %s: not an mbox file (it does not start with \"From \")", path)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	return &Mbox{path: path}, nil
}

// Path returns the mbox file's path.
func (m *Mbox) Path() string { return m.path }

func (m *Mbox) lockTimeout() time.Duration {
	if m.LockTimeout > 0 {
		return m.LockTimeout
	}
	return 10 * time.Second
}

// lock takes the flock on f and then the dotlock, waiting up to the lock
// timeout for each in turn. The returned function releases both.
func (m *Mbox) lock(f *os.File) (unlock func(), err error) {
	deadline := time.Now().Add(m.lockTimeout())
	for {
		ok, err := tryFlock(f)
		if err != nil {
			return nil, fmt.Errorf("mbox %s: flock: %w", m.path, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mbox %s: %w (flock held)", m.path, ErrMboxLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dot := m.path + ".lock"
	for {
		d, err := os.OpenFile(dot, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			fmt.Fprintf(d, "%d\n", os.Getpid())
			d.Close()
			break
		}
		if !errors.Is(err, os.ErrExist) {
			funlock(f)
			return nil, fmt.Errorf("mbox %s: dotlock: %w", m.path, err)
		}
		if time.Now().After(deadline) {
			funlock(f)
			return nil, fmt.Errorf("mbox %s: %w (%s exists; remove it if no program is writing the mbox)", m.path, ErrMboxLocked, dot)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		os.Remove(dot)
		funlock(f)
	}, nil
}

// Deliver appends the message read from r, with a separator line that
// holds the sender taken from its Return-Path or From header
// (MAILER-DAEMON when there is none usable) and the time now, and makes it
// durable (fsync) before it returns. It returns the number of bytes of
// the message read from r. On an error, including an error reading r, the
// file is truncated back to its size before the call. It is a group of
// one message: Add, then Flush.
func (m *Mbox) Deliver(r io.Reader, now time.Time) (n int64, err error) {
	b := m.Batch()
	n, err = b.Add(r, now)
	if err != nil {
		b.Discard()
		return n, err
	}
	return n, b.Flush()
}

// MboxBatch appends messages to an mbox in groups (group commit), for a
// program that can wait for a whole group to be durable before it counts
// any of its messages as delivered, as a mailaccess.Fetcher with a Flush
// does. The first Add of a group opens the file and takes its locks
// (flock and dotlock, as Deliver does); each Add appends one message
// without a sync; Flush makes the group durable with one fsync and
// releases the locks. So the mbox stays locked from the first message of
// a group to its Flush (or Discard): other programs that honour the
// locks wait meanwhile, and a second MboxBatch on the same file waits
// for the first one's Flush.
//
// A Flush that fails truncates the file back to its size before the
// group, so that no message of a group that the caller does not count
// as delivered stays in the file, and a later delivery of the same
// messages does not put them in twice. An Add that fails (reading the
// message, or writing it) cuts the file back to its size before that
// message; the group keeps the messages added before it. Discard
// truncates the group away and releases the locks. A process killed
// during a group leaves what it appended in the file (the locks go with
// the process, except the dotlock file, which then needs removing by
// hand): the caller, which had not counted those messages, delivers
// them again, so they come twice.
//
// An MboxBatch may be used by several goroutines at once; its Adds are
// appended one after the other.
type MboxBatch struct {
	m      *Mbox
	mu     sync.Mutex
	f      *os.File // open and locked while a group is under way
	unlock func()
	start  int64 // the file's size before the group
	end    int64 // the file's size after the last message added
	n      int   // messages in the group
	broken error // a failed Add that could not cut its message off
}

// Batch returns a new, empty group of deliveries into m. It takes no
// lock until its first Add.
func (m *Mbox) Batch() *MboxBatch { return &MboxBatch{m: m} }

// Add appends the message read from r as Deliver does, without a sync:
// it is durable only once Flush returns nil. The first Add of a group
// waits for the locks (up to LockTimeout). It returns the number of
// bytes of the message read from r.
func (b *MboxBatch) Add(r io.Reader, now time.Time) (n int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken != nil {
		return 0, b.broken
	}
	if b.f == nil {
		if err := b.open(); err != nil {
			return 0, err
		}
	}
	end, n, err := b.m.appendMessage(b.f, b.end, r, now)
	if err == nil {
		b.end = end
		b.n++
		return n, nil
	}
	if terr := b.cut(b.end); terr != nil {
		b.broken = fmt.Errorf("mbox %s: a failed message could not be cut off: %w", b.m.path, terr)
		return n, errors.Join(err, b.broken)
	}
	if b.n == 0 {
		b.release()
	}
	return n, err
}

// Pending returns the number of messages added and not yet flushed or
// discarded.
func (b *MboxBatch) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Flush makes the group durable (one fsync) and releases the locks. On
// an error the file is truncated back to its size before the group.
// Flush with nothing added does nothing.
func (b *MboxBatch) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return nil
	}
	defer b.release()
	err := b.broken
	if err == nil {
		if err = fileSync(b.f); err != nil {
			err = fmt.Errorf("mbox %s: %w", b.m.path, err)
		}
	}
	if err != nil {
		if terr := b.cut(b.start); terr != nil {
			err = errors.Join(err, terr)
		}
	}
	return err
}

// Discard truncates the messages added since the last Flush away and
// releases the locks. It returns how many there were, and the error of
// the truncation.
func (b *MboxBatch) Discard() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return 0, nil
	}
	n := b.n
	err := b.cut(b.start)
	b.release()
	return n, err
}

// open opens the file, takes the locks, and starts a group at its end.
func (b *MboxBatch) open() error {
	f, err := os.OpenFile(b.m.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("mbox: %w", err)
	}
	unlock, err := b.m.lock(f)
	if err != nil {
		f.Close()
		return err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		unlock()
		f.Close()
		return fmt.Errorf("mbox %s: %w", b.m.path, err)
	}
	b.f, b.unlock, b.start, b.end, b.n, b.broken = f, unlock, size, size, 0, nil
	return nil
}

// release ends the group: it releases the locks and closes the file.
func (b *MboxBatch) release() {
	b.unlock()
	b.f.Close()
	b.f, b.unlock, b.n, b.broken = nil, nil, 0, nil
}

// cut truncates the file to size, syncs that, and places the next write
// there.
func (b *MboxBatch) cut(size int64) error {
	if err := b.f.Truncate(size); err != nil {
		return fmt.Errorf("mbox %s: truncating back to %d bytes: %w", b.m.path, size, err)
	}
	fileSync(b.f)
	if _, err := b.f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("mbox %s: %w", b.m.path, err)
	}
	return nil
}

// appendMessage writes the message read from r into f at its offset,
// which is size, the end of the file, with its separator line and its
// mboxrd quoting. It returns the file's new size and the number of bytes
// read from r.
func (m *Mbox) appendMessage(f *os.File, size int64, r io.Reader, now time.Time) (end, n int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	header, herr := peekHeader(br)
	if herr != nil && !errors.Is(herr, io.EOF) {
		return size, 0, herr
	}
	cw := &countWriter{w: f}
	var out io.Writer = cw
	if m.failAfter > 0 {
		out = &failingWriter{w: cw, left: m.failAfter}
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	// Start on a fresh line, after an empty one, whatever the previous
	// writer left.
	sep, err := separatorPrefix(f, size)
	if err != nil {
		return size, 0, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	bw.WriteString(sep)
	bw.WriteString(FromLine(envelopeSender(header), now))
	q := &fromQuoter{w: bw}
	n, err = io.Copy(q, br)
	if err != nil {
		return size + cw.n, n, err
	}
	q.flush()
	if !q.endsWithNewline() {
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	if err = bw.Flush(); err != nil {
		return size + cw.n, n, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	return size + cw.n, n, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}

// separatorPrefix returns what must come before a new "From " line so that
// it follows an empty line: nothing for an empty file or one that ends
// with "\n\n", else one or two LFs.
func separatorPrefix(f *os.File, size int64) (string, error) {
	if size == 0 {
		return "", nil
	}
	var tail [2]byte
	off := max(size-2, 0)
	k, err := f.ReadAt(tail[:size-off], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	t := tail[:k]
	switch {
	case bytes.HasSuffix(t, []byte("\n\n")) || size == 1 && string(t) == "\n":
		return "", nil
	case bytes.HasSuffix(t, []byte("\n")):
		return "\n", nil
	}
	return "\n\n", nil
}

// peekHeader returns the message's header (up to the empty line, or as
// much of it as br's buffer holds) without consuming it.
func peekHeader(br *bufio.Reader) ([]byte, error) {
	for size := 4 << 10; ; size *= 2 {
		size = min(size, br.Size())
		b, err := br.Peek(size)
		if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
			return b[:i+1], nil
		}
		if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
			return b[:i+1], nil
		}
		if err != nil || size == br.Size() {
			return b, err
		}
	}
}

// envelopeSender picks the address for the separator line: the
// Return-Path, else the first From address, else MAILER-DAEMON.
func envelopeSender(header []byte) string {
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n"))))
	h, _ := tr.ReadMIMEHeader()
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp != "" {
		rp = strings.TrimSuffix(strings.TrimPrefix(rp, "<"), ">")
		if validSender(rp) {
			return rp
		}
	}
	if from := h.Get("From"); from != "" {
		if list, err := mail.ParseAddressList(from); err == nil && len(list) > 0 && validSender(list[0].Address) {
			return list[0].Address
		}
	}
	return "MAILER-DAEMON"
}

func validSender(s string) bool {
	if s == "" || len(s) > 254 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// FromLine returns the mbox separator line for sender and t, with its LF:
// "From sender Mon Jan  2 15:04:05 2006\n" (asctime, in UTC, as RFC 4155
// describes).
func FromLine(sender string, t time.Time) string {
	return "From " + sender + " " + t.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n"
}

// fromQuoter copies a message, adding one '>' before every line that
// matches ^>*From (mboxrd quoting). It works on a stream: a line's start
// is held back only while it may still turn out to need a '>'.
type fromQuoter struct {
	w       *bufio.Writer
	midLine bool // inside a line that needs no quoting
	gts     int  // '>' seen at the start of the current line
	matched int  // bytes of "From " matched after them
	last    byte // the last byte copied
	any     bool // anything was copied
}

const fromPrefix = "From "

func (q *fromQuoter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		q.last, q.any = p[len(p)-1], true
	}
	for i := 0; i < len(p); {
		if q.midLine {
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				q.w.Write(p[i:])
				break
			}
			q.w.Write(p[i : i+j+1])
			i += j + 1
			q.midLine = false
			continue
		}
		c := p[i]
		switch {
		case q.matched == 0 && c == '>':
			q.gts++
			i++
		case c == fromPrefix[q.matched]:
			q.matched++
			i++
			if q.matched == len(fromPrefix) {
				q.writePending(1)
				q.midLine = true
			}
		default:
			// Not a From line: release what was held, and copy c as
			// part of an ordinary line (it may be the line's LF).
			q.writePending(0)
			q.midLine = true
		}
	}
	if err := q.w.Flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (q *fromQuoter) writePending(extra int) {
	for range q.gts + extra {
		q.w.WriteByte('>')
	}
	q.w.WriteString(fromPrefix[:q.matched])
	q.gts, q.matched = 0, 0
}

// flush releases a line start held back at the end of the message.
func (q *fromQuoter) flush() {
	if !q.midLine {
		q.writePending(0)
	}
}

func (q *fromQuoter) endsWithNewline() bool { return !q.any || q.last == '\n' }

// MboxMessage is one message of an mbox file as SplitMbox returns it.
type MboxMessage struct {
	// From is the separator line without "From " and without its line end.
	From string
	// Body is the message with the mboxrd quoting undone and without the
	// empty line that ends it.
	Body []byte
}

// SplitMbox splits an mboxrd file into its messages and undoes the
// quoting: one '>' is removed from every line that matches ^>+From . A
// message is taken to end with the line end before the empty line that
// precedes the next separator line (or the end of the file); a message
// that had no final line end gets one. It fails on data that does not
// start with "From ".
func SplitMbox(data []byte) ([]MboxMessage, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if !bytes.HasPrefix(data, []byte("From ")) {
		return nil, errors.New("mbox: data does not start with \"From \"")
	}
	var out []MboxMessage
	var cur *MboxMessage
	finish := func() {
		if cur == nil {
			return
		}
		// Drop the empty line that ends the message.
		cur.Body = bytes.TrimSuffix(cur.Body, []byte("\n"))
		out = append(out, *cur)
	}
	prevEmpty := true
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if prevEmpty && bytes.HasPrefix(line, []byte("From ")) {
			finish()
			cur = &MboxMessage{From: strings.TrimRight(string(line[5:]), "\r\n")}
			prevEmpty = false
			continue
		}
		prevEmpty = string(line) == "\n"
		if k := bytes.IndexFunc(line, func(r rune) bool { return r != '>' }); k > 0 && bytes.HasPrefix(line[k:], []byte("From ")) {
			line = line[1:]
		}
		cur.Body = append(cur.Body, line...)
	}
	finish()
	return out, nil
}

type failingWriter struct {
	w    io.Writer
	left int64
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left = 0
		return n, errors.New("write failed (test)")
	}
	f.left -= int64(len(p))
	return f.w.Write(p)
}
