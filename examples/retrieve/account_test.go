package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/internal/deliver"
)

func TestFolderFile(t *testing.T) {
	tests := []struct {
		name  string
		delim rune
		want  string
	}{
		{"INBOX", '/', ""},
		{"inbox", '/', ""},
		{"Sent", '/', "Sent"},
		{"Archive/2024", '/', "Archive.2024"},
		{"Archive.2024", '/', "Archive%2E2024"},
		{"Archive.2024", '.', "Archive.2024"},
		{"a/b", '.', "a%2Fb"},
		{"..", '/', "%2E%2E"},
		{"/", '/', "%-.%-"},
		{"a//b", '/', "a.%-.b"},
		{".hidden", '/', "%2Ehidden"},
		{"100%", '/', "100%25"},
		{"tab\there", '/', "tab%09here"},
		{"nul\x00", '/', "nul%00"},
		{"back\\slash", '/', "back%5Cslash"},
		{"Entwürfe/日本語", '/', "Entwürfe.日本語"},
		{"flat/name", 0, "flat%2Fname"},
	}
	for _, tt := range tests {
		got := folderFile(tt.name, tt.delim)
		if got != tt.want {
			t.Errorf("folderFile(%q, %q) = %q, want %q", tt.name, tt.delim, got, tt.want)
		}
		if back := unescapeFolder(got, tt.delim); back != tt.name && !strings.EqualFold(tt.name, "INBOX") {
			t.Errorf("unescapeFolder(%q) = %q, want %q", got, back, tt.name)
		}
	}
	// Every name gives one safe file name, and different names different
	// files.
	seen := map[string]string{}
	long := strings.Repeat("ü", 200)
	for _, name := range []string{long, long + "x", strings.Repeat("%", 300), strings.Repeat("a.", 200), "x", "x/y", "x.y", "x%2Ey"} {
		f := folderFile(name, '/')
		if len(f)+1 > maxDirName || strings.ContainsAny(f, "/\x00") || f == "." || f == ".." || !utf8.ValidString(f) {
			t.Errorf("folderFile(%.20q...) = %q: not a safe file name", name, f)
		}
		if other, ok := seen[f]; ok {
			t.Errorf("%q and %q both give %q", name, other, f)
		}
		seen[f] = name
	}
}

func accountServer(t *testing.T) (*imaptest.Server, map[string][][]byte) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.CreateFolder("alice", "Junk", `\Junk`)
	msgs := map[string][][]byte{}
	for i, f := range []string{"INBOX", "Sent", "Archive/2024", "a.b", "Entwürfe", "Junk"} {
		for j := range 2 {
			raw := []byte("Subject: " + f + "\r\n\r\nmessage " + strings.Repeat("x", 10*i+j) + "\r\n")
			s.Append("alice", f, raw)
			msgs[f] = append(msgs[f], raw)
		}
	}
	return s, msgs
}

func TestRetrieveAccountMaildirTree(t *testing.T) {
	s, msgs := accountServer(t)
	md := filepath.Join(t.TempDir(), "Mail")
	args := []string{"-maildir", md, "-exclude", "Sent", "-ca", writeCA(t, s.CertPEM()), "imaps://alice@" + s.Addr + "/*"}
	code, out, errs := runRetrieve(t, password, args...)
	if code != 0 || !strings.HasPrefix(out, "delivered=8 skipped=0 deleted=0 bytes=") || !strings.HasSuffix(out, " folders=4\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for dir, f := range map[string]string{"": "INBOX", ".Archive.2024": "Archive/2024", ".a%2Eb": "a.b", ".Entwürfe": "Entwürfe"} {
		sameSet(t, maildirFiles(t, filepath.Join(md, dir)), msgs[f])
		if dir != "" {
			if _, err := os.Stat(filepath.Join(md, dir, "maildirfolder")); err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
		}
	}
	for _, dir := range []string{".Sent", ".Junk"} {
		if _, err := os.Stat(filepath.Join(md, dir)); !os.IsNotExist(err) {
			t.Fatalf("%s exists: %v", dir, err)
		}
	}
	code, out, errs = runRetrieve(t, password, args...)
	if code != 0 || out != "delivered=0 skipped=8 deleted=0 bytes=0 folders=4\n" {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestRetrieveAccountMbox(t *testing.T) {
	s, msgs := accountServer(t)
	dir := filepath.Join(t.TempDir(), "mboxes")
	code, out, errs := runRetrieve(t, password, "-mbox", dir, "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr+"/Archive/%")
	if code != 0 || !strings.HasSuffix(out, " folders=1\n") || !strings.HasPrefix(out, "delivered=2 ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	data, err := os.ReadFile(filepath.Join(dir, "Archive.2024"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := deliver.SplitMbox(data)
	if err != nil || len(got) != 2 {
		t.Fatalf("mbox: %d messages, %v", len(got), err)
	}
	for i, m := range got {
		if !bytes.Equal(m.Body, msgs["Archive/2024"][i]) {
			t.Fatalf("message %d differs: %q", i, m.Body)
		}
	}
	if n := len(s.Messages("alice", "Archive/2024")); n != 0 {
		t.Fatalf("Archive/2024 holds %d after delete", n)
	}
	if n := len(s.Messages("alice", "INBOX")); n != 2 {
		t.Fatalf("INBOX holds %d: it was not selected", n)
	}
	if _, err := os.Stat(filepath.Join(dir, ".unimail-state")); err != nil {
		t.Fatalf("state file: %v", err)
	}
}

func TestRetrieveAccountBadUsage(t *testing.T) {
	s, _ := accountServer(t)
	md := filepath.Join(t.TempDir(), "Mail")
	ca := writeCA(t, s.CertPEM())
	code, _, errs := runRetrieve(t, password, "-maildir", md, "-ca", ca, "imaps://alice@"+s.Addr+"/Nothing/*")
	if code != exitFailed || !strings.Contains(errs, "no folder") {
		t.Fatalf("no match: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runRetrieve(t, password, "-maildir", md, "-exclude", "Sent", "-ca", ca, "imaps://alice@"+s.Addr+"/INBOX")
	if code != exitUsage || !strings.Contains(errs, "-exclude needs a folder pattern") {
		t.Fatalf("-exclude without a pattern: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runRetrieve(t, password, "-maildir", md, "-exclude", "a\r\nb", "-ca", ca, "imaps://alice@"+s.Addr+"/*")
	if code != exitUsage {
		t.Fatalf("bad pattern: exit %d, stderr %q", code, errs)
	}
}

// TestRetrieveAccountOddNames: folder names that cannot be file names as
// they are (too long, "..", a level that is empty) are stored under escaped
// names, never dropped, and a name that had to be cut is kept in full
// beside its messages.
func TestRetrieveAccountOddNames(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	long := strings.Repeat("Ä", 150)
	names := []string{long, "..", "a//b", "x\ty"}
	for i, f := range names {
		s.Append("alice", f, []byte("Subject: "+strings.Repeat("n", i)+"\r\n\r\nx\r\n"))
	}
	md := filepath.Join(t.TempDir(), "Mail")
	code, out, errs := runRetrieve(t, password, "-maildir", md, "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr+"/*")
	if code != 0 || !strings.HasPrefix(out, "delivered=4 ") || !strings.HasSuffix(out, " folders=5\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, f := range names {
		dir := filepath.Join(md, "."+folderFile(f, '/'))
		if got := maildirFiles(t, dir); len(got) != 1 {
			t.Fatalf("%q: %d messages in %s", f, len(got), dir)
		}
	}
	b, err := os.ReadFile(filepath.Join(md, "."+folderFile(long, '/'), folderNameFile))
	if err != nil || string(b) != long+"\n" {
		t.Fatalf("full name of the cut folder: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(md)); len(ents) != 1 {
		t.Fatalf("something was written beside the Maildir: %v", ents)
	}
}
