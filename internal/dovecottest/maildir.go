package dovecottest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The Maildir++ layout that Dovecot uses with mail_location = maildir:~/Maildir:
// INBOX is Maildir itself, folder "A" is Maildir/.A, and "A.B" (B inside A,
// '.' being the hierarchy separator) is Maildir/.A.B. Each holds cur/, new/,
// tmp/ and Dovecot's index files.

// folderRE limits folder names to what needs no modified UTF-7 and no IMAP
// quoting subtleties: ASCII letters, digits, space and - _ + , ( ) with '.'
// between hierarchy levels.
var folderRE = regexp.MustCompile(`^[A-Za-z0-9 _+,()-]+(\.[A-Za-z0-9 _+,()-]+)*$`)

// folderDir returns the Maildir directory of the user's folder, or fails
// the test for an unknown user or a folder name the harness does not handle.
func (s *Server) folderDir(tb testing.TB, user, folder string) (string, bool) {
	tb.Helper()
	if _, ok := s.users[user]; !ok {
		tb.Fatalf("dovecottest: unknown user %q", user)
		return "", false
	}
	root := filepath.Join(s.Dir, "home", user, "Maildir")
	if strings.EqualFold(folder, "INBOX") {
		return root, true
	}
	if len(folder) > 200 || !folderRE.MatchString(folder) || strings.HasPrefix(strings.ToUpper(folder), "INBOX.") {
		tb.Fatalf("dovecottest: folder name %q: use INBOX or ASCII letters, digits, space and - _ + , ( ) with '.' between levels", folder)
		return "", false
	}
	return filepath.Join(root, "."+folder), true
}

// mkdir creates dir (mode 0700) if it does not exist, owned by the mail
// user.
func (s *Server) mkdir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.chown(dir)
}

// chown gives path to the mail user when the harness runs as root (as an
// ordinary user, everything already belongs to the mail user).
func (s *Server) chown(path string) error {
	if !s.id.root {
		return nil
	}
	return os.Lchown(path, s.id.uid, s.id.gid)
}

// ensureFolder creates a Maildir folder with cur/, new/ and tmp/; a folder
// other than INBOX also gets the maildirfolder marker file.
func (s *Server) ensureFolder(dir string, sub bool) error {
	for _, d := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if err := s.mkdir(d); err != nil {
			return err
		}
	}
	if !sub {
		return nil
	}
	marker := filepath.Join(dir, "maildirfolder")
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.chown(marker)
}

// isIndexFile reports whether name is one of Dovecot's per-folder files
// that describe the messages: the UID list (with UIDVALIDITY), the index,
// its log and cache, and the keyword names. The UIDVALIDITY generator
// (dovecot-uidvalidity*) is not one of them, so a new UID list gets a new,
// larger UIDVALIDITY.
func isIndexFile(name string) bool {
	return strings.HasPrefix(name, "dovecot.index") ||
		strings.HasPrefix(name, "dovecot-uidlist") ||
		name == "dovecot-keywords"
}

// removeIndexes removes Dovecot's per-folder index files from dir.
func removeIndexes(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() && isIndexFile(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// nextName returns a new Maildir file name. Its leading number grows with
// every call, and Dovecot gives UIDs to new files in the order of that
// number, so messages get UIDs in the order the harness wrote them. The
// name also ends in that number (",n=..."), because Dovecot keys its table
// of file names with a hash of the name up to its ":" (glib's ASU hash) in
// which a common ending erases what came before: with 100,000 names ending
// in the same ",S=4000,W=4000" its first session took 80 s instead of 5.
//
// Like the names Dovecot's own delivery (LMTP, dovecot-lda) gives, it
// carries the message's size (S=) and its size with CRLF line ends (W=,
// the RFC822.SIZE that IMAP reports), so that Dovecot answers RFC822.SIZE
// from the name instead of reading the file, as it does for delivered
// mail.
func (s *Server) nextName(raw []byte) string {
	n := s.stamp.Add(1)
	return fmt.Sprintf("%d.P%d.dovecottest,S=%d,W=%d,n=%d", n, os.Getpid(), len(raw), virtualSize(raw), n)
}

// virtualSize is the size of raw with every line end counted as CRLF.
func virtualSize(raw []byte) int {
	n := len(raw)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			n++
		}
	}
	return n
}

// writeFile creates path exclusively with data and gives it to the mail
// user.
func (s *Server) writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && s.id.root {
		err = f.Chown(s.id.uid, s.id.gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Seed replaces the content of the user's folder with raws, in that order:
// message i gets UID i+1 under a new UIDVALIDITY when Dovecot next opens the
// folder. The bytes are stored exactly as given (callers pass CRLF line
// ends). The folder (INBOX, or a name such as "Archive" or "Archive.2024"
// with '.' between levels) is created if needed.
//
// Seed works on the Maildir directly, so it must not run while a session
// has the folder open: call it before clients connect, or after they have
// logged out. It waits (up to 5 s) for the session processes of clients
// that have just disconnected to finish, and fails the test if one stays
// open. Thousands of messages take well under a second.
func (s *Server) Seed(tb testing.TB, user, folder string, raws [][]byte) {
	tb.Helper()
	dir, ok := s.folderDir(tb, user, folder)
	if !ok || !s.waitNoSessions(tb, "Seed") {
		return
	}
	if err := s.seed(dir, !strings.EqualFold(folder, "INBOX"), raws); err != nil {
		tb.Fatalf("dovecottest: Seed %s/%s: %v", user, folder, err)
	}
}

func (s *Server) seed(dir string, sub bool, raws [][]byte) error {
	if err := s.ensureFolder(dir, sub); err != nil {
		return err
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(dir, d, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := removeIndexes(dir); err != nil {
		return err
	}
	newDir := filepath.Join(dir, "new")
	for _, raw := range raws {
		if err := s.writeFile(filepath.Join(newDir, s.nextName(raw)), raw); err != nil {
			return err
		}
	}
	return nil
}

// Append delivers one message (its bytes exactly as given) into the user's
// folder while the server runs, the way a local delivery agent does: it is
// written into tmp/ and renamed into new/. The folder is created if needed.
// A session that opens the folder afterwards sees it, and so does a session
// in IDLE on it (Dovecot reports it within about half a second: it batches
// change notifications). It gets a UID above every message already there.
func (s *Server) Append(tb testing.TB, user, folder string, raw []byte) {
	tb.Helper()
	dir, ok := s.folderDir(tb, user, folder)
	if !ok {
		return
	}
	if err := s.ensureFolder(dir, !strings.EqualFold(folder, "INBOX")); err != nil {
		tb.Fatalf("dovecottest: Append %s/%s: %v", user, folder, err)
		return
	}
	name := s.nextName(raw)
	tmp := filepath.Join(dir, "tmp", name)
	if err := s.writeFile(tmp, raw); err != nil {
		tb.Fatalf("dovecottest: Append %s/%s: %v", user, folder, err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		tb.Fatalf("dovecottest: Append %s/%s: %v", user, folder, err)
	}
}

// Messages returns the raw bytes of the messages now in the user's folder,
// in the order of their UIDs: the UIDs Dovecot has recorded in its UID list,
// then the files it has not seen yet in the order it will number them. A
// message expunged through IMAP or deleted through POP3 (after QUIT) is gone
// from the Maildir, so it is not returned. A folder that does not exist has
// no messages. Messages only reads, so it may run while sessions are open.
func (s *Server) Messages(tb testing.TB, user, folder string) [][]byte {
	tb.Helper()
	dir, ok := s.folderDir(tb, user, folder)
	if !ok {
		return nil
	}
	var err error
	for range 20 {
		var msgs [][]byte
		msgs, err = readFolder(dir)
		if err == nil {
			return msgs
		}
		if !errors.Is(err, errRenamed) {
			break
		}
		// Dovecot renamed a file between the listing and the read (new/
		// to cur/, or a flag change): list again.
	}
	tb.Fatalf("dovecottest: Messages %s/%s: %v", user, folder, err)
	return nil
}

var errRenamed = errors.New("a message file was renamed while reading the folder")

// readFolder reads the messages of one Maildir folder in UID order.
func readFolder(dir string) ([][]byte, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	ul, err := readUIDList(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		return nil, err
	}
	// new/ before cur/: Dovecot moves files from new/ to cur/, so a file
	// moved between the two listings is still seen once.
	files := map[string]string{} // base name -> path
	for _, d := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || e.IsDir() {
				continue
			}
			files[baseName(name)] = filepath.Join(dir, d, name)
		}
	}
	type entry struct {
		uid  uint32 // 0: not numbered yet
		base string
	}
	entries := make([]entry, 0, len(files))
	for base := range files {
		entries = append(entries, entry{ul.uids[base], base})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		switch {
		case a.uid != 0 && b.uid != 0:
			return a.uid < b.uid
		case a.uid != 0 || b.uid != 0:
			return a.uid != 0
		default:
			return maildirSortCmp(a.base, b.base) < 0
		}
	})
	msgs := make([][]byte, 0, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(files[e.base])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errRenamed
		}
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, b)
	}
	return msgs, nil
}

// baseName is a Maildir file name without its ":2,<flags>" info part.
func baseName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

// maildirSortCmp orders file names the way Dovecot 2.3 numbers new files
// (maildir_filename_sort_cmp): by the leading seconds, then by the
// microseconds of an "M<usecs>" part, then by the base name.
func maildirSortCmp(a, b string) int {
	secs := func(s string) (int64, string) {
		var n int64
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int64(s[i]-'0')
			i++
		}
		return n, s[i:]
	}
	usecs := func(s string) (int, bool) {
		if !strings.HasPrefix(s, ".") {
			return 0, false
		}
		for i := 1; i < len(s) && s[i] != '.' && s[i] != ':'; i++ {
			if s[i] == 'M' {
				n := 0
				for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
					n = n*10 + int(s[i]-'0')
				}
				return n, true
			}
		}
		return 0, false
	}
	sa, ra := secs(a)
	sb, rb := secs(b)
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	ua, oka := usecs(ra)
	ub, okb := usecs(rb)
	if oka && okb && ua != ub {
		if ua < ub {
			return -1
		}
		return 1
	}
	return strings.Compare(baseName(ra), baseName(rb))
}

// uidList is what the harness reads from a dovecot-uidlist file.
type uidList struct {
	uidValidity uint32
	uids        map[string]uint32 // base name -> UID
}

// readUIDList parses a dovecot-uidlist file (version 3, as Dovecot 2.x
// writes it, or version 1). A missing file is an empty list. A last line
// without its newline (Dovecot appending at that moment) is ignored.
func readUIDList(path string) (uidList, error) {
	ul := uidList{uids: map[string]uint32{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ul, nil
	}
	if err != nil {
		return ul, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return ul, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			f := strings.Fields(line)
			if len(f) == 0 {
				return ul, fmt.Errorf("%s: empty header", path)
			}
			switch f[0] {
			case "3":
				for _, x := range f[1:] {
					if strings.HasPrefix(x, "V") {
						v, _ := strconv.ParseUint(x[1:], 10, 32)
						ul.uidValidity = uint32(v)
					}
				}
			case "1":
				if len(f) > 1 {
					v, _ := strconv.ParseUint(f[1], 10, 32)
					ul.uidValidity = uint32(v)
				}
			default:
				return ul, fmt.Errorf("%s: unknown version %q", path, f[0])
			}
			continue
		}
		uidStr, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		uid, err := strconv.ParseUint(uidStr, 10, 32)
		if err != nil || uid == 0 {
			continue
		}
		var name string
		if i := strings.Index(rest, ":"); i >= 0 && (i == 0 || rest[i-1] == ' ') {
			name = rest[i+1:] // version 3: "<uid> [<ext>...] :<filename>"
		} else if f := strings.Fields(rest); len(f) > 0 {
			name = f[len(f)-1] // version 1: "<uid> <flags> <filename>"
		}
		if name != "" {
			ul.uids[baseName(name)] = uint32(uid)
		}
	}
	return ul, sc.Err()
}

// UIDValidity returns the folder's UIDVALIDITY, asking Dovecot (doveadm
// mailbox status), which also gives UIDs to messages it had not seen yet.
// The folder must exist.
func (s *Server) UIDValidity(tb testing.TB, user, folder string) uint32 {
	tb.Helper()
	if _, ok := s.folderDir(tb, user, folder); !ok {
		return 0
	}
	v, err := s.doveadmUIDValidity(user, folder)
	if err != nil {
		tb.Fatalf("dovecottest: UIDValidity %s/%s: %v", user, folder, err)
	}
	return v
}

func (s *Server) doveadmUIDValidity(user, folder string) (uint32, error) {
	if strings.EqualFold(folder, "INBOX") {
		folder = "INBOX"
	}
	cmd := exec.Command(s.doveadm, "-c", s.conf, "-f", "tab", "mailbox", "status", "-u", user, "uidvalidity", folder)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("doveadm mailbox status: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	// Tab format: a header line ("mailbox", "uidvalidity"), then the values.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 2 {
		head, vals := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
		for i, h := range head {
			if h == "uidvalidity" && i < len(vals) {
				if v, err := strconv.ParseUint(vals[i], 10, 32); err == nil && v != 0 {
					return uint32(v), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("doveadm mailbox status: unexpected output %q", out)
}

// ResetUIDValidity makes Dovecot number the folder anew, as a server does
// after its index is lost: the messages stay (with their flags), but the
// folder gets a new, larger UIDVALIDITY and its messages new UIDs (from 1,
// in the order of their file names). For POP3 with pop3_uidl_format
// %08Xu%08Xv this changes every UIDL. The new UIDVALIDITY is in place when
// ResetUIDValidity returns; it fails the test if Dovecot kept the old one.
//
// Like Seed, it must not run while a session has the folder open; it waits
// (up to 5 s) for sessions that are ending.
func (s *Server) ResetUIDValidity(tb testing.TB, user, folder string) {
	tb.Helper()
	dir, ok := s.folderDir(tb, user, folder)
	if !ok || !s.waitNoSessions(tb, "ResetUIDValidity") {
		return
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("dovecottest: ResetUIDValidity %s/%s: %v", user, folder, err)
		return
	}
	old, err := s.doveadmUIDValidity(user, folder)
	if err == nil {
		err = removeIndexes(dir)
	}
	var now uint32
	if err == nil {
		now, err = s.doveadmUIDValidity(user, folder)
	}
	if err == nil && now == old {
		err = fmt.Errorf("UIDVALIDITY stayed %d", now)
	}
	if err != nil {
		tb.Fatalf("dovecottest: ResetUIDValidity %s/%s: %v", user, folder, err)
	}
}
