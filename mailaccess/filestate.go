package mailaccess

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

const fileStateHeader = "unimail-state 1\n"

// FileState is a State kept in a file: an append-only journal with one
// line per delivered message, made durable (fsync) before Put returns. It
// is read whole when opened (100,000 records take well under 100 ms), and
// rewritten then (compacted, atomically) only when most of its lines are
// superseded or it ends in a torn line; otherwise a page past its end is
// reserved (fallocate, on Linux; elsewhere it is compacted every time),
// so that a full disk fails the open, before anything is fetched, rather
// than the first Put. A line torn by a crash at the end of the file is
// ignored. The file is locked while open: a second FileState on
// the same file, in this process or another, gets an error that matches
// ErrInUse instead of corrupting it.
//
// The journal format is line-based text: a header line, then "P" lines
// (mailbox, UID, epoch, delivery time, size, SHA-256, and the folder of
// Record.CopiedTo when it is set), "F" lines (forget a UID) and "M" lines
// (a mailbox's mark), fields separated by spaces and escaped with %XX.
type FileState struct {
	path string

	mu     sync.Mutex
	f      *os.File
	unlock func() error
	size   int64 // bytes of complete lines in the file
	broken error
	m      map[string]map[UID]Record
	marks  map[string]UID
}

var _ IncrementalState = (*FileState)(nil)

// OpenFileState opens (or creates) the journal at path, reads it,
// compacts it, and locks it until Close.
func OpenFileState(path string) (*FileState, error) {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	s := &FileState{path: path, unlock: unlock, m: make(map[string]map[UID]Record), marks: make(map[string]UID)}
	st, err := s.load()
	if err != nil {
		unlock()
		return nil, err
	}
	if !st.clean() || !s.reopen(st.size) {
		if err := s.compact(); err != nil {
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

func (s *FileState) load() (journalStats, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return journalStats{}, nil
	}
	if err != nil {
		return journalStats{}, stateErr("read", err)
	}
	return readJournal(data, s.m, s.marks)
}

// Mark returns the mailbox's mark.
func (s *FileState) Mark(_ context.Context, mailbox string) (UID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return "", stateErr("read", errors.New("state is closed"))
	}
	return s.marks[mailbox], nil
}

// SetMark appends the mailbox's new mark to the journal and fsyncs it.
func (s *FileState) SetMark(_ context.Context, mailbox string, uid UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.append(appendMark(nil, mailbox, uid)); err != nil {
		return err
	}
	s.marks[mailbox] = uid
	return nil
}

// compact rewrites the journal with one line per live record, atomically,
// and opens it for appending.
func (s *FileState) compact() error {
	n := 0
	for _, recs := range s.m {
		n += len(recs)
	}
	buf := make([]byte, 0, len(fileStateHeader)+n*200+len(s.marks)*100)
	buf = append(buf, fileStateHeader...)
	mbs := make([]string, 0, len(s.m))
	for mb := range s.m {
		mbs = append(mbs, mb)
	}
	sort.Strings(mbs)
	for _, mb := range mbs {
		recs := s.m[mb]
		uids := make([]string, 0, len(recs))
		for u := range recs {
			uids = append(uids, string(u))
		}
		sort.Strings(uids)
		for _, u := range uids {
			buf = appendRecord(buf, mb, recs[UID(u)])
		}
	}
	marked := make([]string, 0, len(s.marks))
	for mb := range s.marks {
		marked = append(marked, mb)
	}
	sort.Strings(marked)
	for _, mb := range marked {
		buf = appendMark(buf, mb, s.marks[mb])
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return stateErr("compact", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		os.Remove(tmp)
		return stateErr("compact", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return stateErr("compact", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return stateErr("compact", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return stateErr("compact", err)
	}
	syncDir(filepath.Dir(s.path))
	af, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return stateErr("open", err)
	}
	s.f = af
	s.size = int64(len(buf))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Records returns the mailbox's records.
func (s *FileState) Records(_ context.Context, mailbox string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, stateErr("read", errors.New("state is closed"))
	}
	recs := make([]Record, 0, len(s.m[mailbox]))
	for _, r := range s.m[mailbox] {
		recs = append(recs, r)
	}
	return recs, nil
}

// Count counts the mailbox's records.
func (s *FileState) Count(_ context.Context, mailbox, epoch string) (total, inEpoch int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, 0, stateErr("read", errors.New("state is closed"))
	}
	total, inEpoch = countEpoch(s.m[mailbox], epoch)
	return total, inEpoch, nil
}

// Lookup returns the records of uids.
func (s *FileState) Lookup(_ context.Context, mailbox string, uids ...UID) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, stateErr("read", errors.New("state is closed"))
	}
	return lookup(s.m[mailbox], uids), nil
}

// Put appends the records to the journal and fsyncs it before returning.
func (s *FileState) Put(_ context.Context, mailbox string, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		buf = appendRecord(buf, mailbox, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.append(buf); err != nil {
		return err
	}
	mbm := s.m[mailbox]
	if mbm == nil {
		mbm = make(map[UID]Record)
		s.m[mailbox] = mbm
	}
	for _, r := range recs {
		mbm[r.UID] = r
	}
	return nil
}

// Forget appends forget lines for the UIDs that have records.
func (s *FileState) Forget(_ context.Context, mailbox string, uids ...UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	mbm := s.m[mailbox]
	for _, u := range uids {
		if _, ok := mbm[u]; !ok {
			continue
		}
		buf = append(buf, "F "...)
		buf = append(buf, escapeField(mailbox)...)
		buf = append(buf, ' ')
		buf = append(buf, escapeField(string(u))...)
		buf = append(buf, '\n')
	}
	if len(buf) == 0 {
		return nil
	}
	if err := s.append(buf); err != nil {
		return err
	}
	for _, u := range uids {
		delete(mbm, u)
	}
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

// Close closes the journal and releases its lock.
func (s *FileState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if uerr := s.unlock(); err == nil {
		err = uerr
	}
	if err != nil {
		return stateErr("close", err)
	}
	return nil
}
