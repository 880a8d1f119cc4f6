package mailaccess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
)

// The index file (the journal's path with ".index" added) saves a
// FileState's index when it closes, so that the next open reads the
// index (16 bytes a record, checked and used in place) instead of the
// whole journal. It is a cache: it is used only when it describes the
// journal as it is (its size and its last bytes) and its checksum holds,
// it is removed before the journal next changes, and without it the
// journal is read whole as before. It is written without a sync: a torn
// one fails its checksum.
//
// Layout, little-endian: the magic line; the hash key; the journal's size,
// the length of its tail (up to 64) and its last bytes; the number of
// journal lines; the number of mailboxes, then for each its name, whether
// it has a mark and the mark, its epochs with their counts, and its
// entries (hash, then offset<<16 | epoch, sorted by hash); a CRC-32C of
// everything before.
const indexMagic = "unimail-state-index 1\n"

const indexTail = 64

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *FileState) indexPath() string { return s.path + ".index" }

// dropIndex removes the index file before the journal changes.
func (s *FileState) dropIndex() {
	if s.indexOnDisk {
		os.Remove(s.indexPath())
		s.indexOnDisk = false
	}
}

// journalTail returns the last bytes of the journal of size bytes.
func journalTail(r io.ReaderAt, size int64) ([]byte, error) {
	n := min(size, indexTail)
	tail := make([]byte, n)
	if _, err := r.ReadAt(tail, size-n); err != nil {
		return nil, err
	}
	return tail, nil
}

// loadIndex reads the index file, if it describes the journal that s.r
// reads, of size bytes.
func (s *FileState) loadIndex(size int64) (*fileIndex, bool) {
	data, err := os.ReadFile(s.indexPath())
	if err != nil {
		return nil, false
	}
	tail, err := journalTail(s.r, size)
	if err != nil {
		return nil, false
	}
	x, ok := parseIndex(data, size, tail)
	if ok {
		s.indexOnDisk = true
	}
	return x, ok
}

// indexReader reads the fields of an index file; a read past the end
// sets bad.
type indexReader struct {
	b   []byte
	bad bool
}

func (r *indexReader) take(n uint64) []byte {
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *indexReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *indexReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *indexReader) str() string { return string(r.take(uint64(r.u32()))) }

// parseIndex checks an index file against the journal (its size and last
// bytes) and reads it.
func parseIndex(data []byte, size int64, tail []byte) (*fileIndex, bool) {
	if len(data) < len(indexMagic)+4 || !bytes.HasPrefix(data, []byte(indexMagic)) {
		return nil, false
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, false
	}
	r := &indexReader{b: body[len(indexMagic):]}
	x := &fileIndex{key: r.u64(), mbs: make(map[string]*mbIndex)}
	if int64(r.u64()) != size || !bytes.Equal(r.take(uint64(r.u32())), tail) {
		return nil, false
	}
	x.lines = int(r.u64())
	nmb := r.u32()
	for i := uint32(0); i < nmb && !r.bad; i++ {
		name := r.str()
		m := &mbIndex{}
		if r.u32() == 1 {
			m.hasMark = true
		}
		m.mark = UID(r.str())
		nep := r.u32()
		if nep > 1<<16 {
			return nil, false
		}
		total := 0
		for j := uint32(0); j < nep && !r.bad; j++ {
			m.epochs = append(m.epochs, r.str())
			c := int(r.u64())
			if c < 0 || c > len(data) {
				return nil, false
			}
			m.counts = append(m.counts, c)
			total += c
		}
		n := r.u64()
		if n > uint64(len(data))/baseEntry || uint64(total) != n {
			return nil, false
		}
		m.base = r.take(n * baseEntry)
		m.n = int(n)
		// Sorted by hash, each at a place in the journal, of a known epoch.
		var prev uint64
		for k := 0; k+baseEntry <= len(m.base); k += baseEntry {
			h := binary.LittleEndian.Uint64(m.base[k:])
			v := binary.LittleEndian.Uint64(m.base[k+8:])
			if (k > 0 && h <= prev) || int64(v>>16) >= size || v&0xffff >= uint64(nep) {
				return nil, false
			}
			prev = h
		}
		if _, dup := x.mbs[name]; dup {
			return nil, false
		}
		x.mbs[name] = m
	}
	if r.bad || len(r.b) != 0 {
		return nil, false
	}
	return x, true
}

// writeIndex saves the index of a journal of size bytes that s.r reads,
// replacing the index file. It is best effort: without it the next open
// reads the journal.
func (s *FileState) writeIndex() error {
	tail, err := journalTail(s.r, s.size)
	if err != nil {
		return err
	}
	n := 0
	names := make([]string, 0, len(s.x.mbs))
	for name, m := range s.x.mbs {
		if len(m.epochs) > 1<<16 {
			return errors.New("too many epochs")
		}
		n += m.n
		names = append(names, name)
	}
	sort.Strings(names)
	buf := make([]byte, 0, len(indexMagic)+128+n*baseEntry)
	buf = append(buf, indexMagic...)
	buf = binary.LittleEndian.AppendUint64(buf, s.x.key)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(s.size))
	buf = appendStr(buf, string(tail))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(s.x.lines))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(names)))
	type entry struct{ h, v uint64 }
	var entries []entry
	for _, name := range names {
		m := s.x.mbs[name]
		buf = appendStr(buf, name)
		hasMark := uint32(0)
		if m.hasMark {
			hasMark = 1
		}
		buf = binary.LittleEndian.AppendUint32(buf, hasMark)
		buf = appendStr(buf, string(m.mark))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(m.epochs)))
		for i, e := range m.epochs {
			buf = appendStr(buf, e)
			buf = binary.LittleEndian.AppendUint64(buf, uint64(m.counts[i]))
		}
		entries = entries[:0]
		m.each(func(h uint64, sl slot) { entries = append(entries, entry{h, sl.pack()}) })
		if s.size >= 1<<48 {
			return errors.New("journal too large for an index")
		}
		slices.SortFunc(entries, func(a, b entry) int {
			switch {
			case a.h < b.h:
				return -1
			case a.h > b.h:
				return 1
			}
			return 0
		})
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(entries)))
		for _, e := range entries {
			buf = binary.LittleEndian.AppendUint64(buf, e.h)
			buf = binary.LittleEndian.AppendUint64(buf, e.v)
		}
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	tmp := s.indexPath() + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.indexPath()); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
