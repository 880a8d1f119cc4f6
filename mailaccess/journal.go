package mailaccess

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// journalStats is what reading a journal found.
type journalStats struct {
	size  int64 // bytes of complete lines, header included
	lines int   // record, forget and mark lines
	live  int   // records and marks in force after reading
	torn  bool  // the data ended in a torn line (or a torn header)
}

// clean says whether the journal is worth keeping as it is: it has a
// header, no torn end, and no more superseded lines than lines in force.
func (st journalStats) clean() bool {
	return st.size > 0 && !st.torn && st.lines-st.live <= st.live
}

// readJournal reads journal bytes into m and marks, and says what it
// found. A last line without its newline (torn by a crash) is ignored.
func readJournal(data []byte, m map[string]map[UID]Record, marks map[string]UID) (journalStats, error) {
	var st journalStats
	if len(data) == 0 {
		return st, nil
	}
	if !bytes.HasPrefix(data, []byte(fileStateHeader)) {
		if len(data) < len(fileStateHeader) && bytes.HasPrefix([]byte(fileStateHeader), data) {
			st.torn = true
			return st, nil // torn header
		}
		return st, stateErr("read", errors.New("not a unimail state file (bad header)"))
	}
	st.size = int64(len(fileStateHeader))
	data = data[len(fileStateHeader):]
	// Records take some 150 bytes: size the first mailbox's map for all.
	p := journalParser{hint: len(data) / 150}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			st.torn = true
			break // torn last line
		}
		st.lines++
		if err := p.line(data[:i], m, marks); err != nil {
			return st, stateErr("read", fmt.Errorf("line %d: %w", st.lines+1, err))
		}
		st.size += int64(i + 1)
		data = data[i+1:]
	}
	for _, mbm := range m {
		st.live += len(mbm)
	}
	st.live += len(marks)
	return st, nil
}

// journalParser reads journal lines. It keeps the last mailbox name and
// epoch it read, so that the lines of one mailbox share their strings.
type journalParser struct {
	fields [8][]byte
	mb, ep lastField
	mbm    map[UID]Record // the map of mb
	hint   int            // the size of the next mailbox map made
}

// lastField unescapes a field, remembering the last one.
type lastField struct {
	raw []byte
	s   string
}

// get returns the unescaped value of f; changed says it differs from the
// last one.
func (l *lastField) get(f []byte) (s string, changed bool, err error) {
	if l.raw != nil && bytes.Equal(f, l.raw) {
		return l.s, false, nil
	}
	s, err = unescapeField(string(f))
	if err != nil {
		return "", false, err
	}
	l.raw, l.s = f, s
	return s, true, nil
}

// mailbox returns the mailbox named by the escaped field f.
func (p *journalParser) mailbox(f []byte) (string, error) {
	mb, changed, err := p.mb.get(f)
	if changed {
		p.mbm = nil
	}
	return mb, err
}

func (p *journalParser) line(line []byte, m map[string]map[UID]Record, marks map[string]UID) error {
	n := 0
	for n < len(p.fields) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			p.fields[n] = line
			n++
			line = nil
			break
		}
		p.fields[n] = line[:i]
		n++
		line = line[i+1:]
	}
	if line != nil {
		return errors.New("malformed record") // too many fields
	}
	f := p.fields[:n]
	kind := string(f[0])
	switch {
	case (n == 7 || n == 8) && kind == "P":
		mb, err1 := p.mailbox(f[1])
		uid, err2 := unescapeField(string(f[2]))
		ep, _, err3 := p.ep.get(f[3])
		ns, err4 := parseInt(f[4])
		size, err5 := parseInt(f[5])
		var r Record
		var err6 error
		if len(f[6]) != 2*len(r.SHA256) {
			err6 = errors.New("bad fingerprint")
		} else if _, err := hex.Decode(r.SHA256[:], f[6]); err != nil {
			err6 = err
		}
		var copied string
		var err7 error
		if n == 8 {
			copied, err7 = unescapeField(string(f[7]))
			if err7 == nil && copied == "" {
				err7 = errors.New("empty folder")
			}
		}
		if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		r.UID, r.Epoch, r.Delivered, r.Size, r.CopiedTo = UID(uid), ep, time.Unix(0, ns).UTC(), size, copied
		if p.mbm == nil {
			p.mbm = m[mb]
			if p.mbm == nil {
				p.mbm = make(map[UID]Record, p.hint)
				p.hint = 0
				m[mb] = p.mbm
			}
		}
		p.mbm[r.UID] = r
		return nil
	case n == 3 && kind == "F":
		mb, err1 := p.mailbox(f[1])
		uid, err2 := unescapeField(string(f[2]))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("malformed record: %w", err)
		}
		delete(m[mb], UID(uid))
		return nil
	case n == 3 && kind == "M":
		mb, err1 := p.mailbox(f[1])
		uid, err2 := unescapeField(string(f[2]))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("malformed mark: %w", err)
		}
		marks[mb] = UID(uid)
		return nil
	}
	return errors.New("malformed record")
}

// parseInt parses a decimal int64 as strconv.ParseInt does, without
// making a string of b.
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	d := b
	if neg || (len(b) > 0 && b[0] == '+') {
		d = b[1:]
	}
	if len(d) == 0 || len(d) > 18 {
		return strconv.ParseInt(string(b), 10, 64) // empty, or may overflow
	}
	var v int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

func escapeField(s string) string {
	if s == "" {
		return "~"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '~' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeField(s string) (string, error) {
	if s == "~" {
		return "", nil
	}
	if s == "" {
		return "", errors.New("empty field")
	}
	if !strings.ContainsRune(s, '%') {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad escape")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func appendRecord(b []byte, mailbox string, r Record) []byte {
	b = append(b, "P "...)
	b = append(b, escapeField(mailbox)...)
	b = append(b, ' ')
	b = append(b, escapeField(string(r.UID))...)
	b = append(b, ' ')
	b = append(b, escapeField(r.Epoch)...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Delivered.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Size, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, r.SHA256[:])
	if r.CopiedTo != "" {
		b = append(b, ' ')
		b = append(b, escapeField(r.CopiedTo)...)
	}
	return append(b, '\n')
}

func appendMark(b []byte, mailbox string, uid UID) []byte {
	b = append(b, "M "...)
	b = append(b, escapeField(mailbox)...)
	b = append(b, ' ')
	b = append(b, escapeField(string(uid))...)
	return append(b, '\n')
}
