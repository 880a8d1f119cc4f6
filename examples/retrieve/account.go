package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/mailaccess"
)

// isPattern reports whether the URL's path is a folder pattern: it holds
// "*", or a "%" that does not begin a %XX escape.
func isPattern(rawURL string) bool {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return false
	}
	_, path, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '*':
			return true
		case '%':
			if i+2 >= len(path) || !isHexDigit(path[i+1]) || !isHexDigit(path[i+2]) {
				return true
			}
		}
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// maxDirName is the longest file name that common file systems take.
const maxDirName = 255

// folderFile is the file name that a folder's Maildir++ directory (with a
// leading ".") or mbox file (without) has in the tree: the folder's levels
// joined with ".", each escaped so that the name is one safe file name and
// the folder's name can be read back from it (unescapeFolder): "%", ".",
// "/", "\" and control characters are written %XX, a level that is
// empty "%-". INBOX is the top of the tree: "" here. A name longer than
// maxDirName is cut and ends with "%~" and a hash of the whole name; the
// directory (or a file beside the mbox file) then holds the name in
// full (see folderNameFile).
func folderFile(name string, delim rune) string {
	if strings.EqualFold(name, "INBOX") {
		return ""
	}
	levels := []string{name}
	if delim != 0 {
		levels = strings.Split(name, string(delim))
	}
	var b strings.Builder
	for i, l := range levels {
		if i > 0 {
			b.WriteByte('.')
		}
		if l == "" {
			b.WriteString("%-")
			continue
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if c == '%' || c == '.' || c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, "%%%02X", c)
				continue
			}
			b.WriteByte(c)
		}
	}
	s := b.String()
	if len(s)+1 > maxDirName {
		sum := sha256.Sum256([]byte(name))
		cut := maxDirName - 1 - 2 - 16
		for cut > 0 && (s[cut-1] == '%' || (cut > 1 && s[cut-2] == '%')) {
			cut-- // not in the middle of an escape
		}
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut-- // nor of a UTF-8 sequence
		}
		s = s[:cut] + "%~" + hex.EncodeToString(sum[:8])
	}
	return s
}

// unescapeFolder reads a folder's name back from folderFile's result
// (for a name that was not cut), with "." for the hierarchy delimiter.
func unescapeFolder(file string, delim rune) string {
	if file == "" {
		return "INBOX"
	}
	var b strings.Builder
	for i := 0; i < len(file); i++ {
		switch c := file[i]; {
		case c == '%' && i+1 < len(file) && file[i+1] == '-':
			i++ // an empty level
		case c == '%' && i+2 < len(file):
			var v byte
			fmt.Sscanf(file[i+1:i+3], "%02X", &v)
			b.WriteByte(v)
			i += 2
		case c == '.' && delim != 0:
			b.WriteRune(delim)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// folderNameFile holds the full name of a folder whose file name was cut.
const folderNameFile = ".unimail-folder-name"

// tree is a destination per folder: a Maildir++ tree (INBOX at the top,
// each other folder a ".Name" sub-Maildir) or a directory of mbox files.
// One folder's sink is open at a time (FetchAccount fetches them one
// after the other); flush makes it durable.
type tree struct {
	c       *config
	cur     *sink
	curName string
}

// open returns the sink of folder, closing the previous one (whose group
// was flushed or, after a failure, must be dropped).
func (t *tree) open(f mailaccess.FolderInfo) (*sink, error) {
	if t.cur != nil && t.curName == f.Name {
		return t.cur, nil
	}
	t.close()
	file := folderFile(f.Name, f.Delimiter)
	var fc config
	var nameAt string
	if t.c.maildir != "" {
		dir := t.c.maildir
		if file != "" {
			dir = filepath.Join(t.c.maildir, "."+file)
		}
		fc.maildir = dir
		nameAt = filepath.Join(dir, folderNameFile)
	} else {
		if file == "" {
			file = "INBOX"
		}
		fc.mbox = filepath.Join(t.c.mbox, file)
		nameAt = fc.mbox + folderNameFile
	}
	s, err := openDestination(&fc)
	if err != nil {
		return nil, err
	}
	if t.c.maildir != "" && file != "" {
		// Maildir++ marks a sub-folder with an empty "maildirfolder".
		if err := writeIfMissing(filepath.Join(fc.maildir, "maildirfolder"), ""); err != nil {
			s.close()
			return nil, err
		}
	}
	if strings.Contains(file, "%~") {
		if err := writeIfMissing(nameAt, f.Name+"\n"); err != nil {
			s.close()
			return nil, err
		}
	}
	t.cur, t.curName = s, f.Name
	return s, nil
}

func writeIfMissing(path, content string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o600)
}

func (t *tree) flush() error {
	if t.cur == nil {
		return nil
	}
	return t.cur.flush()
}

func (t *tree) close() {
	if t.cur != nil {
		t.cur.close()
		t.cur = nil
	}
}

// runAccount fetches every folder that the URL's pattern selects, less
// the -exclude patterns, into a Maildir++ tree or a directory of mbox
// files, on one connection.
func runAccount(ctx context.Context, c *config, target *unimail.Target, opts *unimail.Options, f *mailaccess.Fetcher, bar *progressBar, stdout, stderr io.Writer) int {
	dest := &tree{c: c}
	defer dest.close()
	root := c.maildir + c.mbox
	if err := os.MkdirAll(root, 0o700); err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	st, err := mailaccess.OpenFileState(c.state)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	defer st.Close()
	f.State = st
	f.Flush = func(context.Context) error { return dest.flush() }

	sel := &mailaccess.Selection{Include: []string{target.Folder}, Exclude: c.excludes}
	acct, err := unimail.DialAccountTarget(ctx, target, opts)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
		return exitCode(err)
	}
	h := func(ctx context.Context, folder mailaccess.FolderInfo, m *mailaccess.Message) error {
		s, err := dest.open(folder)
		if err != nil {
			return err
		}
		var body io.Reader = m.Body
		if bar != nil {
			body = &countingReader{r: m.Body, bar: bar}
		}
		return s.add(body)
	}
	rep, err := f.FetchAccount(ctx, acct, sel, h)
	if bar != nil {
		bar.finish()
	}
	tot := rep.Totals()
	for _, p := range tot.Problems {
		if errors.Is(p, mailaccess.ErrTooLarge) {
			fmt.Fprintf(stderr, "retrieve: left on the server: %v\n", p)
		}
	}
	for _, g := range rep.Gone {
		fmt.Fprintf(stderr, "retrieve: folder gone from the server, its records kept: %s\n", g)
	}
	for _, fr := range rep.Folders {
		if fr.RenamedFrom != "" {
			fmt.Fprintf(stderr, "retrieve: folder %q is new and was compared with %s (renamed?): %d already delivered\n", fr.Folder.Name, fr.RenamedFrom, fr.Report.Recognized)
		}
		if fr.Err != nil {
			fmt.Fprintf(stderr, "retrieve: folder %q: %v\n", fr.Folder.Name, oneLine(fr.Err))
		}
	}
	fmt.Fprintf(stdout, "delivered=%d skipped=%d deleted=%d bytes=%d folders=%d\n", tot.Delivered, tot.Skipped+tot.Recognized+tot.TooLarge, tot.Deleted, tot.Bytes, len(rep.Folders))
	if err != nil {
		if len(rep.Folders) == 0 {
			fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
		}
		return exitCode(err)
	}
	return exitOK
}
