package mailaccess

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// fileIndex is what a FileState keeps in memory: not the records, which
// stay in the journal, but where each live record's line starts, its UID
// epoch, and each mailbox's mark. A record costs some 30 bytes of memory
// (16 when it comes from the index file) however long its line, and a
// Lookup reads only the lines it returns.
//
// Records are found by a keyed 64-bit hash of their UID (FNV-1a from a
// random key chosen when the index is built, so that a server cannot
// choose UIDs that collide). Every line read back is checked against the
// UID asked for, so a collision (some 2^-64 per pair of UIDs of one
// mailbox) can only hide a record: its message is then delivered again,
// never taken for another, and the count of records is one short, which
// makes the next incremental run list the whole mailbox once.
type fileIndex struct {
	key   uint64
	mbs   map[string]*mbIndex
	lines int // record, forget and mark lines in the journal
	hint  int // the size of the next mailbox's map
}

// mbIndex is the index of one mailbox: base, the entries read from the
// index file (sorted by hash), under recs and gone, what changed since.
type mbIndex struct {
	base    []byte            // baseEntry-sized entries: hash, then offset<<16 | epoch
	recs    map[uint64]uint64 // records put since base was read: packed slots
	gone    map[uint64]bool   // base entries forgotten or superseded since
	n       int               // records in force
	epochs  []string          // the UID epochs of the records, by slot.epoch
	counts  []int             // the number of records of each epoch
	mark    UID
	hasMark bool
}

// baseEntry is the size of an entry of mbIndex.base.
const baseEntry = 16

// slot is where a record's line starts in the journal, and its epoch.
type slot struct {
	off   int64
	epoch uint32
}

// pack makes the 8 bytes that base and recs keep of a slot: the offset
// (below 2^48) and the epoch (below 2^16).
func (sl slot) pack() uint64 { return uint64(sl.off)<<16 | uint64(sl.epoch) }

func unpack(v uint64) slot { return slot{off: int64(v >> 16), epoch: uint32(v & 0xffff)} }

// maxEpochs is the most UID epochs that a mailbox's index holds.
const maxEpochs = 1 << 16

func newFileIndex() *fileIndex {
	var k [8]byte
	rand.Read(k[:])
	return &fileIndex{key: binary.LittleEndian.Uint64(k[:]), mbs: make(map[string]*mbIndex)}
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hash returns the keyed hash of a UID.
func (x *fileIndex) hash(uid string) uint64 {
	h := uint64(fnvOffset) ^ x.key
	for i := 0; i < len(uid); i++ {
		h ^= uint64(uid[i])
		h *= fnvPrime
	}
	return mix(h)
}

// hashBytes is hash of string(uid).
func (x *fileIndex) hashBytes(uid []byte) uint64 {
	h := uint64(fnvOffset) ^ x.key
	for _, c := range uid {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// mix spreads the bits of an FNV hash (the finalizer of MurmurHash3), so
// that UIDs that differ in their last digits do not share high bits.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// mailbox returns the index of mb, made when create is set.
func (x *fileIndex) mailbox(mb string, create bool) *mbIndex {
	m := x.mbs[mb]
	if m == nil && create {
		m = &mbIndex{recs: make(map[uint64]uint64, x.hint)}
		x.hint = 0
		x.mbs[mb] = m
	}
	return m
}

// live is the number of records and marks in force.
func (x *fileIndex) live() int {
	n := 0
	for _, m := range x.mbs {
		n += m.n
		if m.hasMark {
			n++
		}
	}
	return n
}

// epochOf returns the index of epoch among m's epochs, adding it; it
// panics past maxEpochs, which Put and the journal reader check first
// (with hasRoom).
func (m *mbIndex) epochOf(epoch string) uint32 {
	for i, e := range m.epochs {
		if e == epoch {
			return uint32(i)
		}
	}
	if len(m.epochs) >= maxEpochs {
		panic("mailaccess: too many UID epochs in one mailbox")
	}
	m.epochs = append(m.epochs, epoch)
	m.counts = append(m.counts, 0)
	return uint32(len(m.epochs) - 1)
}

// hasRoom says whether m can index records of these epochs.
func (m *mbIndex) hasRoom(epochs ...string) bool {
	if len(m.epochs)+len(epochs) < maxEpochs {
		return true
	}
	added := map[string]bool{}
	for _, e := range epochs {
		if !added[e] && !slices.Contains(m.epochs, e) {
			added[e] = true
		}
	}
	return len(m.epochs)+len(added) <= maxEpochs
}

// inBase returns the entry of hash h in base.
func (m *mbIndex) inBase(h uint64) (slot, bool) {
	n := len(m.base) / baseEntry
	i := sort.Search(n, func(i int) bool { return binary.LittleEndian.Uint64(m.base[i*baseEntry:]) >= h })
	if i == n || binary.LittleEndian.Uint64(m.base[i*baseEntry:]) != h {
		return slot{}, false
	}
	v := binary.LittleEndian.Uint64(m.base[i*baseEntry+8:])
	return unpack(v), true
}

// get returns the slot of the record of UID hash h.
func (m *mbIndex) get(h uint64) (slot, bool) {
	if v, ok := m.recs[h]; ok {
		return unpack(v), true
	}
	if len(m.base) == 0 || m.gone[h] {
		return slot{}, false
	}
	return m.inBase(h)
}

// put records that the record of UID hash h starts at off.
func (m *mbIndex) put(h uint64, off int64, epoch uint32) {
	if old, ok := m.get(h); ok {
		m.counts[old.epoch]--
		m.n--
	}
	if m.recs == nil {
		m.recs = make(map[uint64]uint64)
	}
	m.recs[h] = slot{off: off, epoch: epoch}.pack()
	m.counts[epoch]++
	m.n++
}

// forget removes the record of UID hash h; it reports whether there was one.
func (m *mbIndex) forget(h uint64) bool {
	old, ok := m.get(h)
	if !ok {
		return false
	}
	m.counts[old.epoch]--
	m.n--
	delete(m.recs, h)
	if len(m.base) > 0 {
		if _, ok := m.inBase(h); ok {
			if m.gone == nil {
				m.gone = make(map[uint64]bool)
			}
			m.gone[h] = true
		}
	}
	return true
}

// each calls fn with every record in force.
func (m *mbIndex) each(fn func(h uint64, sl slot)) {
	for i := 0; i+baseEntry <= len(m.base); i += baseEntry {
		h := binary.LittleEndian.Uint64(m.base[i:])
		if m.gone[h] {
			continue
		}
		if _, ok := m.recs[h]; ok {
			continue
		}
		v := binary.LittleEndian.Uint64(m.base[i+8:])
		fn(h, unpack(v))
	}
	for h, v := range m.recs {
		fn(h, unpack(v))
	}
}

// count returns the number of m's records, and of those of epoch.
func (m *mbIndex) count(epoch string) (total, inEpoch int) {
	if m == nil {
		return 0, 0
	}
	for i, e := range m.epochs {
		if e == epoch {
			inEpoch = m.counts[i]
		}
	}
	return m.n, inEpoch
}

// lineReader reads a journal line by line, with the offset of each line,
// through a fixed buffer (lines longer than it are gathered apart).
type lineReader struct {
	r    *bufio.Reader
	off  int64 // offset of the next line
	long []byte
}

// next returns the next complete line without its newline, and its
// offset. At the end of the data it returns io.EOF, with torn set when
// the data ended in a line without its newline. The line is valid until
// the next call.
func (l *lineReader) next() (line []byte, off int64, torn bool, err error) {
	off = l.off
	line, err = l.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.long = append(l.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = l.r.ReadSlice('\n')
			l.long = append(l.long, line...)
		}
		line = l.long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, off, len(line) > 0, io.EOF
		}
		return nil, off, false, err
	}
	l.off += int64(len(line))
	return line[:len(line)-1], off, false, nil
}

// fields splits a journal line at its spaces into f; n is the number
// of fields, 0 when there are more than len(f).
func fields(line []byte, f *[8][]byte) (n int) {
	for n < len(f) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			f[n] = line
			return n + 1
		}
		f[n] = line[:i]
		n++
		line = line[i+1:]
	}
	return 0
}

// indexer builds a fileIndex from journal lines. It keeps the last mailbox
// and epoch fields it read, so that the lines of one mailbox cost no
// allocation.
type indexer struct {
	x     *fileIndex
	f     [8][]byte
	mbRaw []byte
	mb    *mbIndex
	epRaw []byte // the last epoch field, when epOK
	epOK  bool
	ep    uint32
}

// line indexes the journal line at off, checking every field.
func (ix *indexer) line(line []byte, off int64) error {
	n := fields(line, &ix.f)
	f := ix.f[:n]
	if n == 0 {
		return errors.New("malformed record")
	}
	switch {
	case (n == 7 || n == 8) && string(f[0]) == "P":
		if err := checkRecordFields(f); err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		m, err := ix.mailbox(f[1])
		if err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		h, err := ix.uidHash(f[2])
		if err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		if !ix.epOK || !bytes.Equal(f[3], ix.epRaw) {
			ep, err := unescapeField(string(f[3]))
			if err != nil {
				return fmt.Errorf("malformed record: %w", err)
			}
			if !m.hasRoom(ep) {
				return errors.New("more than 65,536 UID epochs in one mailbox")
			}
			ix.ep, ix.epOK = m.epochOf(ep), true
			ix.epRaw = append(ix.epRaw[:0], f[3]...)
		}
		ix.x.lines++
		m.put(h, off, ix.ep)
		return nil
	case n == 3 && (string(f[0]) == "F" || string(f[0]) == "M"):
		m, err := ix.mailbox(f[1])
		if err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		if f[0][0] == 'F' {
			h, err := ix.uidHash(f[2])
			if err != nil {
				return fmt.Errorf("malformed record: %w", err)
			}
			m.forget(h)
		} else {
			uid, err := unescapeField(string(f[2]))
			if err != nil {
				return fmt.Errorf("malformed mark: %w", err)
			}
			m.mark, m.hasMark = UID(uid), true
		}
		ix.x.lines++
		return nil
	}
	return errors.New("malformed record")
}

// mailbox returns the index of the mailbox of the escaped field raw.
func (ix *indexer) mailbox(raw []byte) (*mbIndex, error) {
	if ix.mb != nil && bytes.Equal(raw, ix.mbRaw) {
		return ix.mb, nil
	}
	name, err := unescapeField(string(raw))
	if err != nil {
		return nil, err
	}
	ix.mb = ix.x.mailbox(name, true)
	ix.mbRaw = append(ix.mbRaw[:0], raw...)
	ix.epOK = false
	return ix.mb, nil
}

// uidHash returns the hash of the UID of the escaped field raw, without
// making a string of it when it needs no unescaping.
func (ix *indexer) uidHash(raw []byte) (uint64, error) {
	if len(raw) > 0 && raw[0] != '~' && bytes.IndexByte(raw, '%') < 0 {
		return ix.x.hashBytes(raw), nil
	}
	uid, err := unescapeField(string(raw))
	if err != nil {
		return 0, err
	}
	return ix.x.hash(uid), nil
}

// checkRecordFields checks the fields of a record line that the index
// does not keep (time, size, fingerprint, folder), without allocating.
func checkRecordFields(f [][]byte) error {
	if _, err := parseInt(f[4]); err != nil {
		return err
	}
	if _, err := parseInt(f[5]); err != nil {
		return err
	}
	if len(f[6]) != 2*32 {
		return errors.New("bad fingerprint")
	}
	var bad byte
	for _, c := range f[6] {
		bad |= notHex[c]
	}
	if bad != 0 {
		return errors.New("bad fingerprint")
	}
	if len(f) == 8 {
		if !validEscaped(f[7]) || string(f[7]) == "~" {
			return errors.New("bad folder")
		}
	}
	return nil
}

// validEscaped says whether unescapeField accepts raw, without
// allocating.
func validEscaped(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		if i+2 >= len(raw) || notHex[raw[i+1]]|notHex[raw[i+2]] != 0 {
			return false
		}
		i += 2
	}
	return true
}

// notHex is 1 for the octets that are not hexadecimal digits.
var notHex = func() (t [256]byte) {
	for c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			t[c] = 1
		}
	}
	return t
}()

// readRecordLines reads the lines that start at offs from r and parses
// each as a record line. offs need not be sorted; the records come back
// in the order of offs. Nearby lines are read together.
func readRecordLines(r io.ReaderAt, offs []int64) ([]Record, error) {
	order := make([]int, len(offs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case offs[a] < offs[b]:
			return -1
		case offs[a] > offs[b]:
			return 1
		}
		return 0
	})
	out := make([]Record, len(offs))
	var (
		buf   = make([]byte, 0, 16<<10)
		start int64 // offset of buf[0]
	)
	for _, i := range order {
		off := offs[i]
		line, ok := lineIn(buf, start, off)
		if !ok {
			n, err := readFull(r, buf[:cap(buf)], off)
			buf, start = buf[:n], off
			if err != nil && n == 0 {
				return nil, stateErr("read", err)
			}
			line, ok = lineIn(buf, start, off)
			for !ok && n == len(buf) && n == cap(buf) {
				// A line longer than the buffer.
				buf = slices.Grow(buf, len(buf))[:cap(buf)]
				n, err = readFull(r, buf, off)
				buf = buf[:n]
				if err != nil && n == 0 {
					return nil, stateErr("read", err)
				}
				line, ok = lineIn(buf, start, off)
			}
			if !ok {
				return nil, stateErr("read", fmt.Errorf("no complete line at offset %d", off))
			}
		}
		var f [8][]byte
		n := fields(line, &f)
		if (n != 7 && n != 8) || string(f[0]) != "P" {
			return nil, stateErr("read", fmt.Errorf("no record at offset %d", off))
		}
		r, err := parseRecord(f[:n])
		if err != nil {
			return nil, stateErr("read", fmt.Errorf("offset %d: %w", off, err))
		}
		out[i] = r
	}
	return out, nil
}

// lineIn returns the complete line at off within buf (which holds the
// journal from start on), without its newline.
func lineIn(buf []byte, start, off int64) ([]byte, bool) {
	if off < start || off >= start+int64(len(buf)) {
		return nil, false
	}
	rest := buf[off-start:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, false
	}
	return rest[:i], true
}

// readFull reads len(buf) bytes at off, or fewer at the end of the file.
func readFull(r io.ReaderAt, buf []byte, off int64) (int, error) {
	n, err := r.ReadAt(buf, off)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}
