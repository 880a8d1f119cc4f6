// Package deliver writes delivered messages durably into a local
// destination, a Maildir or an mbox file, for examples/retrieve and the
// tests that check what it delivers.
//
// # One message at a time, or in groups
//
// Maildir.Deliver and Mbox.Deliver make each message durable before they
// return: a Maildir message is written into tmp/, fsynced, renamed into
// new/, and new/ is fsynced; an mbox message is appended under the
// mbox's locks and the file fsynced. That costs two syncs (Maildir) or
// one (mbox) per message.
//
// Maildir.Batch and Mbox.Batch commit in groups instead, for a program
// that counts a message as delivered only once its whole group is
// durable, as a mailaccess.Fetcher with a Flush does: Add writes a
// message without making it durable and without publishing it (into the
// Maildir's tmp/; for an mbox, into a temporary file), and Flush makes
// every message added since the last Flush durable at once and only then
// publishes them: a Maildir group after one syncfs, renamed into new/,
// and new/ fsynced once; an mbox group appended under one lock and made
// durable by one fsync. A Flush that fails takes its whole group back
// (nothing in new/, the mbox truncated to its size before the group), so
// that delivering the group again later does not put anything in twice.
// Until a Flush returns nil no message of its group may be counted as
// delivered. A crash or a kill before the Flush leaves nothing of the
// group where mail readers look (Maildir files stay in tmp/, which
// readers ignore), so the program delivers it again, once; only a crash
// in the middle of a Flush, or between a Flush and the moment the
// program records the group, can make messages appear twice.
package deliver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Maildir delivers into a Maildir (tmp/, new/, cur/), durably: each
// message is written to tmp/, fsynced, renamed into new/, and new/ is
// fsynced, before Deliver returns. (go-maildir's own Delivery type does
// not fsync, which is why the write is done here; what is delivered reads
// back with go-maildir.)
//
// On Linux a Maildir keeps tmp/ and new/ open between deliveries, and a
// delivery costs six system calls (create, one write per 256 KiB, fsync,
// close, rename, fsync of new/). The first delivery opens them by name,
// and so does the next delivery after any failure, and a delivery whose
// file cannot be created in the open tmp/ opens them again and tries once
// more: a Maildir removed and created again is found again, and a removed
// one takes nothing (no entry can be created in a removed directory), so
// that nothing is reported delivered that is not on disk. A Maildir
// renamed meanwhile keeps receiving until a delivery fails. Elsewhere
// each delivery opens the directories by name.
//
// Batch delivers in groups instead, with one sync for many messages (see
// MaildirBatch).
//
// A Maildir may be used by several goroutines at once.
type Maildir struct {
	dir  string
	host string
	pid  string

	mu     sync.Mutex
	open   *dirs // the open directories, nil when the next delivery opens them
	closed bool
}

// dirs are a Maildir's open tmp/ and new/ (Linux) or their names, shared
// by the deliveries in progress: refs counts them and the Maildir's own
// reference, and the last one closes the directories.
type dirs struct {
	refs int
	sys  sysDirs
}

// counter numbers this process's deliveries (the Q part of a name).
var counter atomic.Uint64

// bufSize is the size of the buffer a message is read into before it is
// written: most messages take one write.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// fileSync fsyncs an open file or directory: a variable so that the
// tests can count the syncs and make them fail.
var fileSync = (*os.File).Sync

// errClosed is what Deliver returns after Close.
var errClosed = errors.New("maildir closed")

// OpenMaildir creates the Maildir at dir, and its tmp/, new/ and cur/,
// where they are missing (the parent of dir must exist), and makes what
// it created durable (it fsyncs the directory holding each), so that a
// message made durable in new/ is never lost with a directory that was
// not. Close releases what the Maildir holds open.
func OpenMaildir(dir string) (*Maildir, error) {
	if err := makeDirs(dir); err != nil {
		return nil, fmt.Errorf("maildir %s: %w", dir, err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Maildir{dir: dir, host: host, pid: strconv.Itoa(os.Getpid())}, nil
}

// Dir returns the Maildir's directory.
func (m *Maildir) Dir() string { return m.dir }

// Close releases the directories that m holds open (a delivery in
// progress finishes first); closing again does nothing. Deliver fails
// after Close.
func (m *Maildir) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.dropLocked()
}

// acquire returns the open directories, opening them by name when none
// are, with a reference for the caller to give back with release.
func (m *Maildir) acquire() (*dirs, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if m.open == nil {
		sys, err := openDirs(m.dir)
		if err != nil {
			return nil, err
		}
		m.open = &dirs{refs: 1, sys: sys}
	}
	m.open.refs++
	return m.open, nil
}

// release gives back a reference from acquire. After a failure the
// Maildir lets go of d, so that the next delivery opens the directories
// by name again.
func (m *Maildir) release(d *dirs, failed bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if failed && m.open == d {
		err = m.dropLocked()
	}
	return errors.Join(err, d.unref())
}

func (m *Maildir) dropLocked() error {
	if m.open == nil {
		return nil
	}
	d := m.open
	m.open = nil
	return d.unref()
}

func (d *dirs) unref() error {
	d.refs--
	if d.refs == 0 {
		return d.sys.close()
	}
	return nil
}

// uniqueName follows the Maildir naming convention:
// seconds.MmicrosPpidQcounterRrandom.host (the random part is not a
// secret: with the process and its counter it only makes a clash with
// another program's name unlikely, and the file is created exclusively).
func (m *Maildir) uniqueName() string {
	now := time.Now()
	b := make([]byte, 0, 64+len(m.host))
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	b = append(b, 'P')
	b = append(b, m.pid...)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, counter.Add(1), 10)
	b = append(b, 'R')
	b = strconv.AppendUint(b, rand.Uint64()&(1<<48-1), 16)
	b = append(b, '.')
	b = append(b, m.host...)
	return string(b)
}

// create makes a new empty file in tmp/ under a fresh unique name. When
// the file cannot be created in the open tmp/, it opens the directories
// again by name and tries once more.
func (m *Maildir) create() (d *dirs, name string, f tmpFile, err error) {
	for attempt := 0; ; attempt++ {
		if d, err = m.acquire(); err != nil {
			return nil, "", closedFile, err
		}
		for clash := 0; ; clash++ {
			name = m.uniqueName()
			f, err = d.sys.create(name)
			if !errors.Is(err, fs.ErrExist) || clash == 2 {
				break
			}
		}
		if err == nil {
			return d, name, f, nil
		}
		m.release(d, true)
		if attempt == 1 {
			return nil, "", closedFile, err
		}
	}
}

// Deliver copies r into a new message file and makes it durable. It
// returns the final path and the number of bytes written. On an error
// (including an error reading r) nothing is left in new/ and the
// temporary file is removed.
func (m *Maildir) Deliver(r io.Reader) (path string, n int64, err error) {
	d, name, f, n, err := m.write(r)
	if err != nil {
		return "", n, err
	}
	defer func() {
		if err != nil {
			f.close()
			d.sys.remove(name)
		}
		m.release(d, err != nil)
	}()
	if err = f.sync(); err != nil {
		return "", n, err
	}
	err = f.close()
	f = closedFile
	if err != nil {
		return "", n, err
	}
	if err = d.sys.publish(name); err != nil {
		return "", n, err
	}
	return filepath.Join(m.dir, "new", name), n, nil
}

// write copies r into a new file in tmp/ and returns it open, with the
// directories it is in (a reference that the caller gives back with
// release). On an error the file is already closed and removed, and the
// reference given back.
func (m *Maildir) write(r io.Reader) (d *dirs, name string, f tmpFile, n int64, err error) {
	d, name, f, err = m.create()
	if err != nil {
		return nil, "", closedFile, 0, err
	}
	defer func() {
		if err != nil {
			f.close()
			d.sys.remove(name)
			m.release(d, true)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for eof := false; !eof; {
		k, rerr := fill(r, buf)
		switch {
		case rerr == io.EOF:
			eof = true
		case rerr != nil:
			return d, name, f, n, rerr
		}
		if k > 0 {
			if err = f.write(buf[:k]); err != nil {
				return d, name, f, n, err
			}
			n += int64(k)
		}
	}
	return d, name, f, n, nil
}

// fill reads from r until buf is full, r is at its end (io.EOF) or r
// fails; it returns how many bytes it read and, unless buf is full,
// io.EOF or r's error. Unlike io.ReadFull it never turns an error into
// a success: a reader that fails with io.ErrUnexpectedEOF fails here.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// makeDirs creates dir, dir/tmp, dir/new and dir/cur where they are
// missing, and fsyncs the parent of each directory it created.
func makeDirs(dir string) error {
	var syncParent, syncSelf bool
	for i, sub := range []string{"", "tmp", "new", "cur"} {
		err := os.Mkdir(filepath.Join(dir, sub), 0o700)
		switch {
		case err == nil && i == 0:
			syncParent = true
		case err == nil:
			syncSelf = true
		case !errors.Is(err, fs.ErrExist):
			return err
		}
	}
	if syncParent {
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return err
		}
	}
	if syncSelf {
		return syncDir(dir)
	}
	return nil
}

// syncDir fsyncs the directory dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fileSync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// publish renames tmp/name to new/name and fsyncs new/. When the fsync
// fails, it removes new/name again: the delivery failed, and the message
// will come again.
func (d *sysDirs) publish(name string) error {
	if err := d.rename(name); err != nil {
		return err
	}
	if err := d.syncNew(); err != nil {
		d.unpublish(name)
		return err
	}
	return nil
}
