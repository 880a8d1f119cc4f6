package mailaccess

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
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

// readJournal reads a journal from r into the index x, and says what it
// found. A last line without its newline (torn by a crash) is ignored.
func readJournal(r io.Reader, x *fileIndex) (journalStats, error) {
	var st journalStats
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(fileStateHeader))
	if !bytes.Equal(head, []byte(fileStateHeader)) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return st, stateErr("read", err)
		}
		if len(head) == 0 {
			return st, nil // empty
		}
		if len(head) < len(fileStateHeader) && bytes.HasPrefix([]byte(fileStateHeader), head) {
			st.torn = true
			return st, nil // torn header
		}
		return st, stateErr("read", errors.New("not a unimail state file (bad header)"))
	}
	br.Discard(len(fileStateHeader))
	st.size = int64(len(fileStateHeader))
	if f, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil {
			// Records take some 150 bytes: size the first mailbox's map
			// for all.
			x.hint = int(min(fi.Size()/150, 1<<24))
		}
	}
	lr := &lineReader{r: br, off: st.size}
	ix := indexer{x: x}
	for n := 2; ; n++ {
		line, off, torn, err := lr.next()
		if errors.Is(err, io.EOF) {
			st.torn = torn
			break
		}
		if err != nil {
			return st, stateErr("read", err)
		}
		if err := ix.line(line, off); err != nil {
			return st, stateErr("read", fmt.Errorf("line %d: %w", n, err))
		}
		st.size = lr.off
	}
	st.lines = x.lines
	st.live = x.live()
	return st, nil
}

// parseRecord parses the fields of a "P" line (f[0] is "P"; f[1], the
// mailbox, is not read).
func parseRecord(f [][]byte) (Record, error) {
	var r Record
	uid, err2 := unescapeField(string(f[2]))
	ep, err3 := unescapeField(string(f[3]))
	ns, err4 := parseInt(f[4])
	size, err5 := parseInt(f[5])
	var err6 error
	if len(f[6]) != 2*len(r.SHA256) {
		err6 = errors.New("bad fingerprint")
	} else if _, err := hex.Decode(r.SHA256[:], f[6]); err != nil {
		err6 = err
	}
	var copied string
	var err7 error
	if len(f) == 8 {
		copied, err7 = unescapeField(string(f[7]))
		if err7 == nil && copied == "" {
			err7 = errors.New("empty folder")
		}
	}
	if err := errors.Join(err2, err3, err4, err5, err6, err7); err != nil {
		return Record{}, fmt.Errorf("malformed record: %w", err)
	}
	r.UID, r.Epoch, r.Delivered, r.Size, r.CopiedTo = UID(uid), ep, time.Unix(0, ns).UTC(), size, copied
	return r, nil
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
