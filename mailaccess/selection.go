package mailaccess

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/unimail/unimail/mailaccess/driver"
)

// FolderInfo describes one folder of an Account: its decoded name, its
// hierarchy delimiter, its attributes and the Name of its Mailbox (see
// driver.FolderInfo).
type FolderInfo = driver.FolderInfo

// Account is one session with a whole account of folders (IMAP), which
// unimail.DialAccount and imap.DialAccount return and
// Fetcher.FetchAccount drives. The contract that drivers implement is
// driver.Account.
type Account = driver.Account

// Selection says which folders of an account a FetchAccount run takes.
// The zero value takes every selectable folder except the junk and trash
// folders.
//
// Patterns are those of IMAP LIST (RFC 3501 section 6.3.8), matched
// here on the decoded names with the account's hierarchy delimiter: "*"
// matches any run of characters, the delimiter included, and "%" any run
// that holds no delimiter. "*" is every folder, "%" the top level,
// "Archive/*" everything under Archive, "Archive/%" its children only.
// Every other character matches itself, except that the name INBOX (as a
// whole name or as the first level of one) matches in any letter case, as
// IMAP makes it.
type Selection struct {
	// Include lists the patterns of the folders to take; empty means
	// "*", every folder.
	Include []string
	// Exclude lists the patterns of folders to leave out, even when
	// Include matches them.
	Exclude []string
	// Junk and Trash also take the folders with the special-use
	// attribute \Junk or \Trash (RFC 6154), which are otherwise left out
	// unless an Include pattern without wildcards names them.
	Junk, Trash bool
}

// Check returns an error matching ErrInvalidArgument when a pattern is
// empty or holds CR, LF, NUL or invalid UTF-8.
func (s *Selection) Check() error {
	if s == nil {
		return nil
	}
	for _, p := range slices.Concat(s.Include, s.Exclude) {
		if err := checkPattern(p); err != nil {
			return newError("select folders", ErrInvalidArgument, "", err)
		}
	}
	return nil
}

func checkPattern(p string) error {
	switch {
	case p == "":
		return errors.New("empty folder pattern")
	case strings.ContainsAny(p, "\r\n\x00"):
		return fmt.Errorf("folder pattern %q holds CR, LF or NUL", truncate(p, 64))
	case !utf8.ValidString(p):
		return fmt.Errorf("folder pattern %q is not UTF-8", truncate(p, 64))
	}
	return nil
}

// Select returns the folders of folders that the selection takes, INBOX
// first, then in the order of their names: those that are selectable
// (neither \Noselect nor \NonExistent), match an Include pattern and no
// Exclude pattern, and are not \Junk or \Trash unless asked for. It fails
// as Check does.
func (s *Selection) Select(folders []FolderInfo) ([]FolderInfo, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	var sel Selection
	if s != nil {
		sel = *s
	}
	include := sel.Include
	if len(include) == 0 {
		include = []string{"*"}
	}
	var out []FolderInfo
	for _, f := range folders {
		if !f.Selectable() {
			continue
		}
		named := false
		match := false
		for _, p := range include {
			if MatchFolder(p, f.Name, f.Delimiter) {
				match = true
				named = named || !strings.ContainsAny(p, "*%")
			}
		}
		if !match || slices.ContainsFunc(sel.Exclude, func(p string) bool { return MatchFolder(p, f.Name, f.Delimiter) }) {
			continue
		}
		if !named && ((f.Has(driver.AttrJunk) && !sel.Junk) || (f.Has(driver.AttrTrash) && !sel.Trash)) {
			continue
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b FolderInfo) int {
		ai, bi := strings.EqualFold(a.Name, "INBOX"), strings.EqualFold(b.Name, "INBOX")
		switch {
		case ai && !bi:
			return -1
		case bi && !ai:
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// MatchFolder reports whether the decoded folder name matches the LIST
// pattern (see Selection) with the hierarchy delimiter delim (0 when the
// account has none, so that "%" matches as "*" does).
func MatchFolder(pattern, name string, delim rune) bool {
	p, n := []rune(inboxFold(pattern, delim)), []rune(inboxFold(name, delim))
	// memo[i][j]: pattern p[i:] against name n[j:] is known not to match.
	memo := make(map[[2]int]bool)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '*', '%':
				if memo[[2]int{i, j}] {
					return false
				}
				for k := j; k <= len(n); k++ {
					if match(i+1, k) {
						return true
					}
					if k < len(n) && p[i] == '%' && delim != 0 && n[k] == delim {
						break
					}
				}
				memo[[2]int{i, j}] = true
				return false
			default:
				if j >= len(n) || n[j] != p[i] {
					return false
				}
				i, j = i+1, j+1
			}
		}
		return j == len(n)
	}
	return match(0, 0)
}

// inboxFold spells the first level of s as "INBOX" when it is INBOX in
// another letter case.
func inboxFold(s string, delim rune) string {
	first, rest := s, ""
	if delim != 0 {
		if i := strings.IndexRune(s, delim); i >= 0 {
			first, rest = s[:i], s[i:]
		}
	}
	if first != "INBOX" && strings.EqualFold(first, "INBOX") {
		return "INBOX" + rest
	}
	return s
}
