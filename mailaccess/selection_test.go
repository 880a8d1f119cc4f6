package mailaccess_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

func TestMatchFolder(t *testing.T) {
	tests := []struct {
		pattern, name string
		delim         rune
		want          bool
	}{
		// RFC 3501 section 6.3.8: "*" matches across the hierarchy, "%"
		// does not match the delimiter.
		{"*", "INBOX", '/', true},
		{"*", "Archive/2024/Q1", '/', true},
		{"%", "INBOX", '/', true},
		{"%", "Archive/2024", '/', false},
		{"Archive/%", "Archive/2024", '/', true},
		{"Archive/%", "Archive/2024/Q1", '/', false},
		{"Archive/*", "Archive/2024/Q1", '/', true},
		{"Archive/*", "Archive", '/', false},
		{"Archive*", "Archive", '/', true},
		{"Archive*", "Archives/x", '/', true},
		{"Archive%", "Archive/2024", '/', false},
		// RFC 3501's example: "foo*bar" matches "foobar", "fooxyzbar",
		// "foo/s/bar"; "foo%bar" not the last.
		{"foo*bar", "foo/s/bar", '/', true},
		{"foo%bar", "foo/s/bar", '/', false},
		{"foo%bar", "fooxyzbar", '/', true},
		{"%/%", "a/b", '/', true},
		{"%/%", "a/b/c", '/', false},
		{"*/%", "a/b/c", '/', true},
		// The delimiter is the account's: "." here.
		{"Archive.%", "Archive.2024", '.', true},
		{"Archive.%", "Archive.2024.Q1", '.', false},
		{"Archive/%", "Archive.2024", '.', false},
		// No hierarchy: "%" matches as "*".
		{"%", "a/b", 0, true},
		// INBOX in any letter case, as a whole name or the first level.
		{"inbox", "INBOX", '/', true},
		{"Inbox/%", "INBOX/Sub", '/', true},
		{"INBOX", "inbox", '/', true},
		{"INBOXES", "inboxes", '/', false},
		{"Sent", "sent", '/', false},
		// Non-ASCII names are matched as decoded text.
		{"Entwürfe", "Entwürfe", '/', true},
		{"日本*", "日本語/メール", '/', true},
		{"日本%", "日本語/メール", '/', false},
		{"%ü%", "Entwürfe", '/', true},
		// Literal characters must match exactly.
		{"a?b", "axb", '/', false},
		{"", "", '/', true},
		{"x", "", '/', false},
		{"***", "abc", '/', true},
		{"%%%/%", "abc/d", '/', true},
	}
	for _, tt := range tests {
		if got := mailaccess.MatchFolder(tt.pattern, tt.name, tt.delim); got != tt.want {
			t.Errorf("MatchFolder(%q, %q, %q) = %v, want %v", tt.pattern, tt.name, tt.delim, got, tt.want)
		}
	}
}

// TestMatchFolderLong checks that patterns with many wildcards against
// long names finish (no exponential backtracking).
func TestMatchFolderLong(t *testing.T) {
	name := ""
	for range 200 {
		name += "a/"
	}
	pattern := ""
	for range 40 {
		pattern += "%*"
	}
	if mailaccess.MatchFolder(pattern+"b", name, '/') {
		t.Fatal("matched a name without b")
	}
}

func folder(name string, attrs ...string) mailaccess.FolderInfo {
	return mailaccess.FolderInfo{Name: name, Delimiter: '/', Attributes: attrs, Mailbox: "imap://u@h/" + name}
}

func names(fs []mailaccess.FolderInfo) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

func TestSelectionSelect(t *testing.T) {
	all := []mailaccess.FolderInfo{
		folder("Sent", `\Sent`),
		folder("INBOX"),
		folder("Junk", `\junk`), // any letter case
		folder("Trash", driver.AttrTrash),
		folder("Archive", driver.AttrNoSelect),
		folder("Archive/2024", driver.AttrArchive),
		folder("Archive/2024/Q1"),
		folder("Gone", driver.AttrNonExistent),
		folder("Entwürfe", driver.AttrDrafts),
	}
	tests := []struct {
		name string
		sel  *mailaccess.Selection
		want []string
	}{
		{"nil", nil, []string{"INBOX", "Archive/2024", "Archive/2024/Q1", "Entwürfe", "Sent"}},
		{"star", &mailaccess.Selection{Include: []string{"*"}}, []string{"INBOX", "Archive/2024", "Archive/2024/Q1", "Entwürfe", "Sent"}},
		{"top", &mailaccess.Selection{Include: []string{"%"}}, []string{"INBOX", "Entwürfe", "Sent"}},
		{"children", &mailaccess.Selection{Include: []string{"Archive/%"}}, []string{"Archive/2024"}},
		{"exclude", &mailaccess.Selection{Exclude: []string{"Archive/*", "Sent"}}, []string{"INBOX", "Entwürfe"}},
		{"junk and trash", &mailaccess.Selection{Junk: true, Trash: true}, []string{"INBOX", "Archive/2024", "Archive/2024/Q1", "Entwürfe", "Junk", "Sent", "Trash"}},
		{"named junk", &mailaccess.Selection{Include: []string{"INBOX", "Junk"}}, []string{"INBOX", "Junk"}},
		{"wildcard junk", &mailaccess.Selection{Include: []string{"J*"}}, nil},
		{"exclude wins", &mailaccess.Selection{Include: []string{"Junk"}, Exclude: []string{"*"}}, nil},
		{"noselect named", &mailaccess.Selection{Include: []string{"Archive", "Gone"}}, nil},
		{"inbox any case", &mailaccess.Selection{Include: []string{"inbox"}}, []string{"INBOX"}},
	}
	for _, tt := range tests {
		got, err := tt.sel.Select(all)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(names(got), tt.want) {
			t.Errorf("%s: Select = %q, want %q", tt.name, names(got), tt.want)
		}
	}
}

func TestSelectionBadPattern(t *testing.T) {
	for _, sel := range []mailaccess.Selection{
		{Include: []string{""}},
		{Exclude: []string{"a\r\nb"}},
		{Include: []string{"x\x00"}},
		{Include: []string{"\xff"}},
	} {
		_, err := sel.Select([]mailaccess.FolderInfo{folder("INBOX")})
		if !errors.Is(err, mailaccess.ErrInvalidArgument) {
			t.Errorf("Select(%q, %q) = %v, want ErrInvalidArgument", sel.Include, sel.Exclude, err)
		}
	}
}
