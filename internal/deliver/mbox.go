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
// file is truncated back to its size before the call.
func (m *Mbox) Deliver(r io.Reader, now time.Time) (n int64, err error) {
	f, unlock, size, err := m.openLocked()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	defer unlock()
	defer func() {
		if err != nil {
			err = errors.Join(err, m.truncate(f, size))
		}
	}()
	// Start on a fresh line, after an empty one, whatever the previous
	// writer left.
	sep, err := separatorPrefix(f, size)
	if err != nil {
		return 0, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	if _, n, err = m.appendMessage(f, sep, r, now); err != nil {
		return n, err
	}
	if err = fileSync(f); err != nil {
		return n, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	return n, nil
}

// openLocked opens the mbox, takes its locks, and returns it positioned
// at its end, with its size.
func (m *Mbox) openLocked() (f *os.File, unlock func(), size int64, err error) {
	f, err = os.OpenFile(m.path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("mbox: %w", err)
	}
	if unlock, err = m.lock(f); err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	if size, err = f.Seek(0, io.SeekEnd); err != nil {
		unlock()
		f.Close()
		return nil, nil, 0, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	return f, unlock, size, nil
}

// truncate cuts f back to size, on the way out of a failed delivery, and
// syncs that.
func (m *Mbox) truncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("mbox %s: truncating back to %d bytes: %w", m.path, size, err)
	}
	fileSync(f)
	return nil
}

// MboxBatch appends messages to an mbox in groups (group commit), for a
// program that can wait for a whole group to be durable before it counts
// any of its messages as delivered, as a mailaccess.Fetcher with a Flush
// does. Add quotes each message and writes it, with its separator line,
// into a private temporary file (in the system's temporary directory,
// removed from its directory as soon as it is created); Flush locks the
// mbox (flock and dotlock, as Deliver does), appends the whole group,
// makes it durable with one fsync, and unlocks. So the mbox is locked
// only while a group is appended, not while its messages arrive, and a
// process killed before a Flush leaves nothing of that group in the
// mbox (the caller, which had not counted those messages, delivers them
// again, once).
//
// A Flush that fails (the locks, the append or the fsync) truncates the
// mbox back to its size before the group, so that no message of a group
// that the caller does not count as delivered stays in it, and a later
// delivery of the same messages does not put them in twice; the group is
// dropped either way. An Add that fails (reading the message, or writing
// it) leaves the group as it was. Discard drops the group.
//
// An MboxBatch may be used by several goroutines at once; its Adds are
// written one after the other.
type MboxBatch struct {
	m     *Mbox
	mu    sync.Mutex
	spool *os.File // the group's messages, as they go into the mbox
	size  int64    // the bytes of spool that hold them
	n     int      // messages in the group
}

// Batch returns a new, empty group of deliveries into m.
func (m *Mbox) Batch() *MboxBatch { return &MboxBatch{m: m} }

// Add quotes the message read from r as Deliver does and adds it to the
// group: it reaches the mbox at the next Flush, and is durable only once
// that Flush returns nil. It returns the number of bytes of the message
// read from r.
func (b *MboxBatch) Add(r io.Reader, now time.Time) (n int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spool == nil {
		f, err := os.CreateTemp("", "unimail-mbox-group-*")
		if err != nil {
			return 0, fmt.Errorf("mbox %s: %w", b.m.path, err)
		}
		os.Remove(f.Name())
		b.spool = f
	}
	// What a failed message wrote past b.size is ignored, and overwritten
	// by the next one.
	written, n, err := b.m.appendMessage(io.NewOffsetWriter(b.spool, b.size), "", r, now)
	if err != nil {
		return n, err
	}
	b.size += written
	b.n++
	return n, nil
}

// Pending returns the number of messages added and not yet flushed or
// discarded.
func (b *MboxBatch) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Flush appends the group to the mbox under its locks and makes it
// durable (one fsync); the group is then empty. On an error the mbox is
// truncated back to its size before the group, and the group is
// dropped. Flush with nothing added does nothing.
func (b *MboxBatch) Flush() (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		return nil
	}
	defer b.reset()
	f, unlock, size, err := b.m.openLocked()
	if err != nil {
		return err
	}
	defer f.Close()
	defer unlock()
	defer func() {
		if err != nil {
			err = errors.Join(err, b.m.truncate(f, size))
		}
	}()
	sep, err := separatorPrefix(f, size)
	if err != nil {
		return fmt.Errorf("mbox %s: %w", b.m.path, err)
	}
	var out io.Writer = f
	if b.m.failAfter > 0 {
		out = &failingWriter{w: f, left: b.m.failAfter}
	}
	if _, err = io.WriteString(out, sep); err == nil {
		_, err = io.Copy(out, io.NewSectionReader(b.spool, 0, b.size))
	}
	if err == nil {
		err = fileSync(f)
	}
	if err != nil {
		return fmt.Errorf("mbox %s: %w", b.m.path, err)
	}
	return nil
}

// Discard drops the group: none of the messages added since the last
// Flush reaches the mbox. It returns how many there were.
func (b *MboxBatch) Discard() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.n
	b.reset()
	return n
}

// reset empties the group and closes its temporary file.
func (b *MboxBatch) reset() {
	if b.spool != nil {
		b.spool.Close()
	}
	b.spool, b.size, b.n = nil, 0, 0
}

// appendMessage writes the message read from r to w, after sep, with its
// separator line and its mboxrd quoting. It returns the number of bytes
// written to w and the number read from r.
func (m *Mbox) appendMessage(w io.Writer, sep string, r io.Reader, now time.Time) (written, n int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	header, herr := peekHeader(br)
	if herr != nil && !errors.Is(herr, io.EOF) {
		return 0, 0, herr
	}
	cw := &countWriter{w: w}
	var out io.Writer = cw
	if m.failAfter > 0 {
		out = &failingWriter{w: cw, left: m.failAfter}
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	bw.WriteString(sep)
	bw.WriteString(FromLine(envelopeSender(header), now))
	q := &fromQuoter{w: bw}
	n, err = io.Copy(q, br)
	if err != nil {
		return cw.n, n, err
	}
	q.flush()
	if !q.endsWithNewline() {
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	if err = bw.Flush(); err != nil {
		return cw.n, n, fmt.Errorf("mbox %s: %w", m.path, err)
	}
	return cw.n, n, nil
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
