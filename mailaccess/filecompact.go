package mailaccess

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// compact rewrites the journal with its lines in force only (the records'
// lines in their order, then one mark line per mailbox), atomically, and
// opens it for reading and appending. It copies the lines as a stream, so
// that its memory does not grow with the journal.
func (s *FileState) compact() error {
	s.dropIndex()
	s.indexStale = true
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return stateErr("compact", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return stateErr("compact", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	x := newFileIndex()
	size, err := s.copyLive(w, x)
	if err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
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
	s.closeFiles()
	r, err := os.Open(s.path)
	if err != nil {
		return stateErr("open", err)
	}
	af, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.Close()
		return stateErr("open", err)
	}
	s.r, s.f, s.x, s.size = r, af, x, size
	return nil
}

// copyLive writes the header and the lines in force of the journal that
// s.r reads (if any) and s.x indexes to w, indexing them in x. It returns
// the number of bytes written.
func (s *FileState) copyLive(w *bufio.Writer, x *fileIndex) (int64, error) {
	w.WriteString(fileStateHeader)
	size := int64(len(fileStateHeader))
	ix := indexer{x: x}
	if s.r != nil {
		if _, err := s.r.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		br := bufio.NewReaderSize(s.r, 64<<10)
		head, _ := br.Peek(len(fileStateHeader))
		if bytes.Equal(head, []byte(fileStateHeader)) {
			br.Discard(len(fileStateHeader))
			lr := &lineReader{r: br, off: int64(len(fileStateHeader))}
			lv := liveness{x: s.x}
			for {
				line, off, _, err := lr.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return 0, err
				}
				if !lv.live(line, off) {
					continue
				}
				if err := ix.line(line, size); err != nil {
					return 0, err
				}
				w.Write(line)
				w.WriteByte('\n')
				size += int64(len(line)) + 1
			}
		}
	}
	marked := make([]string, 0)
	for mb, m := range s.x.mbs {
		if m.hasMark {
			marked = append(marked, mb)
		}
	}
	sort.Strings(marked)
	var buf []byte
	for _, mb := range marked {
		buf = appendMark(buf[:0], mb, s.x.mbs[mb].mark)
		if err := ix.line(buf[:len(buf)-1], size); err != nil {
			return 0, err
		}
		w.Write(buf)
		size += int64(len(buf))
	}
	return size, nil
}

// liveness tells the record lines in force in an index from those that
// a later line superseded.
type liveness struct {
	x     *fileIndex
	f     [8][]byte
	mbRaw []byte
	mb    *mbIndex
}

// live says whether line, at off, is a record line in force.
func (l *liveness) live(line []byte, off int64) bool {
	n := fields(line, &l.f)
	if (n != 7 && n != 8) || string(l.f[0]) != "P" {
		return false
	}
	if l.mbRaw == nil || !bytes.Equal(l.f[1], l.mbRaw) {
		name, err := unescapeField(string(l.f[1]))
		if err != nil {
			return false
		}
		l.mb = l.x.mbs[name]
		l.mbRaw = append(l.mbRaw[:0], l.f[1]...)
	}
	if l.mb == nil {
		return false
	}
	var h uint64
	raw := l.f[2]
	if len(raw) > 0 && raw[0] != '~' && bytes.IndexByte(raw, '%') < 0 {
		h = l.x.hashBytes(raw)
	} else {
		uid, err := unescapeField(string(raw))
		if err != nil {
			return false
		}
		h = l.x.hash(uid)
	}
	sl, ok := l.mb.get(h)
	return ok && sl.off == off
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
