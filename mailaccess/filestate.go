package mailaccess

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

const fileStateHeader = "unimail-state 1\n"

// FileState is a State kept in a file: an append-only journal with one
// line per delivered message, made durable (fsync) before Put returns.
//
// Its memory does not grow with the records' contents: opening it reads
// the journal once, as a stream, into an index of where each record's
// line starts (some 30 bytes per record, whatever its mailbox name or
// fingerprint), and Lookup and Records read the lines they return back
// from the file. So a run with nothing new on a mailbox of 100,000
// delivered messages reads the journal once and holds none of its records.
//
// The journal is rewritten (compacted, atomically, as a stream) at open
// only when most of its lines are superseded or it ends in a torn line;
// otherwise a page past its end is reserved (fallocate, on Linux;
// elsewhere it is compacted every time), so that a full disk fails the
// open, before anything is fetched, rather than the first Put. A line torn
// by a crash at the end of the file is ignored. The file is locked while
// open: a second FileState on the same file, in this process or another,
// gets an error that matches ErrInUse instead of corrupting it.
//
// The journal format is line-based text: a header line, then "P" lines
// (mailbox, UID, epoch, delivery time, size, SHA-256, and the folder of
// Record.CopiedTo when it is set), "F" lines (forget a UID) and "M" lines
// (a mailbox's mark), fields separated by spaces and escaped with %XX.
type FileState struct {
	path string

	mu     sync.Mutex
	f      *os.File // appends
	r      *os.File // reads
	unlock func() error
	size   int64 // bytes of complete lines in the file
	broken error
	x      *fileIndex

	indexOnDisk bool // the index file describes the journal
	indexStale  bool // the index file is to be written at Close
}

var _ IncrementalState = (*FileState)(nil)

// OpenFileState opens (or creates) the journal at path, reads it,
// compacts it when it is mostly superseded lines, and locks it until
// Close.
func OpenFileState(path string) (*FileState, error) {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	s := &FileState{path: path, unlock: unlock, x: newFileIndex()}
	st, err := s.load()
	if err != nil {
		unlock()
		return nil, err
	}
	if !st.clean() || !s.reopen(st.size) {
		if err := s.compact(); err != nil {
			s.closeFiles()
			unlock()
			return nil, err
		}
	}
	return s, nil
}

// reopen opens a clean journal of size bytes for appending, after making
// sure that the file system has room for the run's first records (so
// that a full disk fails the open, before anything is fetched, as a
// compaction would). It reports false when the journal must be compacted
// instead: the file changed, or the room cannot be reserved this way.
func (s *FileState) reopen(size int64) bool {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size || !reserve(f, size, reserveBytes) {
		f.Close()
		return false
	}
	s.f = f
	s.size = size
	return true
}

// reserveBytes is the room that opening a journal without compacting it
// reserves past its end: a page, the least a file system allocates.
const reserveBytes = 4096

func stateErr(op string, err error) error {
	return newError("state "+op, ErrState, "", err)
}

// load opens the journal for reading (when there is one) and indexes it.
func (s *FileState) load() (journalStats, error) {
	r, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return journalStats{}, nil
	}
	if err != nil {
		return journalStats{}, stateErr("read", err)
	}
	s.r = r
	if fi, err := r.Stat(); err == nil && fi.Size() > 0 {
		if x, ok := s.loadIndex(fi.Size()); ok {
			s.x = x
			return journalStats{size: fi.Size(), lines: x.lines, live: x.live()}, nil
		}
	}
	s.indexStale = true
	st, err := readJournal(r, s.x)
	if err != nil {
		r.Close()
		s.r = nil
		return st, err
	}
	return st, nil
}

// Mark returns the mailbox's mark.
func (s *FileState) Mark(_ context.Context, mailbox string) (UID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return "", stateErr("read", errors.New("state is closed"))
	}
	if m := s.x.mbs[mailbox]; m != nil {
		return m.mark, nil
	}
	return "", nil
}

// SetMark appends the mailbox's new mark to the journal and fsyncs it.
func (s *FileState) SetMark(_ context.Context, mailbox string, uid UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.append(appendMark(nil, mailbox, uid)); err != nil {
		return err
	}
	m := s.x.mailbox(mailbox, true)
	m.mark, m.hasMark = uid, true
	s.x.lines++
	return nil
}

// Records returns the mailbox's records, read back from the journal.
func (s *FileState) Records(_ context.Context, mailbox string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, stateErr("read", errors.New("state is closed"))
	}
	m := s.x.mbs[mailbox]
	if m == nil || m.n == 0 {
		return []Record{}, nil
	}
	offs := make([]int64, 0, m.n)
	m.each(func(_ uint64, sl slot) { offs = append(offs, sl.off) })
	return readRecordLines(s.r, offs)
}

// Count counts the mailbox's records.
func (s *FileState) Count(_ context.Context, mailbox, epoch string) (total, inEpoch int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, 0, stateErr("read", errors.New("state is closed"))
	}
	total, inEpoch = s.x.mbs[mailbox].count(epoch)
	return total, inEpoch, nil
}

// Lookup returns the records of uids, read back from the journal.
func (s *FileState) Lookup(_ context.Context, mailbox string, uids ...UID) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, stateErr("read", errors.New("state is closed"))
	}
	m := s.x.mbs[mailbox]
	if m == nil {
		return nil, nil
	}
	var (
		offs   []int64
		wanted []UID
	)
	for _, u := range uids {
		if sl, ok := m.get(s.x.hash(string(u))); ok {
			offs = append(offs, sl.off)
			wanted = append(wanted, u)
		}
	}
	if len(offs) == 0 {
		return nil, nil
	}
	recs, err := readRecordLines(s.r, offs)
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for i, r := range recs {
		if r.UID == wanted[i] { // else another UID with the same hash
			out = append(out, r)
		}
	}
	return out, nil
}

// Put appends the records to the journal and fsyncs it before returning.
func (s *FileState) Put(_ context.Context, mailbox string, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	ends := make([]int, len(recs))
	for i, r := range recs {
		buf = appendRecord(buf, mailbox, r)
		ends[i] = len(buf)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.x.mbs[mailbox]; m != nil || len(recs) >= maxEpochs {
		if m == nil {
			m = &mbIndex{}
		}
		epochs := make([]string, len(recs))
		for i, r := range recs {
			epochs[i] = r.Epoch
		}
		if !m.hasRoom(epochs...) {
			return stateErr("write", errors.New("more than 65,536 UID epochs in one mailbox"))
		}
	}
	base := s.size
	if s.size+int64(len(buf)) >= 1<<48 {
		return stateErr("write", errors.New("journal of 256 TiB"))
	}
	if err := s.append(buf); err != nil {
		return err
	}
	m := s.x.mailbox(mailbox, true)
	start := 0
	for i, r := range recs {
		m.put(s.x.hash(string(r.UID)), base+int64(start), m.epochOf(r.Epoch))
		start = ends[i]
	}
	s.x.lines += len(recs)
	return nil
}

// Forget appends forget lines for the UIDs that have records.
func (s *FileState) Forget(_ context.Context, mailbox string, uids ...UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.x.mbs[mailbox]
	if m == nil {
		return nil
	}
	var (
		buf    []byte
		hashes []uint64
	)
	for _, u := range uids {
		h := s.x.hash(string(u))
		if _, ok := m.get(h); !ok {
			continue
		}
		buf = append(buf, "F "...)
		buf = append(buf, escapeField(mailbox)...)
		buf = append(buf, ' ')
		buf = append(buf, escapeField(string(u))...)
		buf = append(buf, '\n')
		hashes = append(hashes, h)
	}
	if len(buf) == 0 {
		return nil
	}
	if err := s.append(buf); err != nil {
		return err
	}
	for _, h := range hashes {
		m.forget(h)
	}
	s.x.lines += len(hashes)
	return nil
}

// append writes buf at the end of the journal and fsyncs. On failure it
// cuts the file back to its last complete line, so that a failed write
// (a full disk) never leaves a torn line in the middle of the journal.
func (s *FileState) append(buf []byte) error {
	if s.f == nil {
		return stateErr("write", errors.New("state is closed"))
	}
	if s.broken != nil {
		return stateErr("write", s.broken)
	}
	s.dropIndex()
	s.indexStale = true
	_, err := s.f.Write(buf)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = fmt.Errorf("journal may end in a torn line after a failed write: %w", terr)
		}
		return stateErr("write", err)
	}
	s.size += int64(len(buf))
	return nil
}

// closeFiles closes the journal's files.
func (s *FileState) closeFiles() error {
	var err error
	if s.f != nil {
		err = s.f.Close()
		s.f = nil
	}
	if s.r != nil {
		if rerr := s.r.Close(); err == nil {
			err = rerr
		}
		s.r = nil
	}
	return err
}

// Close closes the journal and releases its lock.
func (s *FileState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if s.indexStale && s.broken == nil {
		s.writeIndex() // best effort: without it the next open reads the journal
	}
	err := s.closeFiles()
	if uerr := s.unlock(); err == nil {
		err = uerr
	}
	if err != nil {
		return stateErr("close", err)
	}
	return nil
}
