package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/pop/poptest"
)

// unwritable makes the directory dir refuse new entries (chattr +i, which
// binds root too; else, for other users, mode 0500) until restore, and
// skips the test where neither works.
func unwritable(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err == nil {
		restore = func() { exec.Command("chattr", "-i", dir).Run() }
	} else if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		restore = func() { os.Chmod(dir, 0o700) }
	} else {
		t.Skipf("cannot make %s unwritable: chattr +i: %v: %s", dir, err, bytes.TrimSpace(out))
	}
	t.Cleanup(restore)
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o600); err == nil {
		os.Remove(probe)
		restore()
		t.Skipf("%s still takes new files", dir)
	}
	return restore
}

func dirLen(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A group that cannot be made durable (its renames into new/ fail) ends
// the run with exit status 5: nothing of it is in the Maildir (not in
// new/, not left in tmp/), nothing is deleted on the server, and the next
// run delivers every message, each once.
func TestRetrieveFlushFails(t *testing.T) {
	msgs := append(testMessages(), []byte("Subject: four\r\n\r\n4\r\n"), []byte("Subject: five\r\n\r\n5\r\n"))
	for _, proto := range []string{"pop3s", "imaps"} {
		t.Run(proto, func(t *testing.T) {
			var url, ca string
			var onServer func() int
			if proto == "pop3s" {
				s := poptest.NewTLSServer(t, nil)
				s.AddUser("alice", password)
				s.SetMessages("alice", msgs)
				url, ca = "pop3s://alice@"+s.Addr, writeCA(t, s.CertPEM())
				onServer = func() int { return len(s.Messages("alice")) }
			} else {
				s := imaptest.NewTLSServer(t, nil)
				s.AddUser("alice", password)
				s.SetMessages("alice", "INBOX", msgs)
				url, ca = "imaps://alice@"+s.Addr, writeCA(t, s.CertPEM())
				onServer = func() int { return len(s.Messages("alice", "INBOX")) }
			}
			md := filepath.Join(t.TempDir(), "Mail")
			args := []string{"-maildir", md, "-state", filepath.Join(t.TempDir(), "state"), "-retention", "delete", "-batch", "2", "-ca", ca, url}
			for _, sub := range []string{"tmp", "new", "cur"} {
				if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			restore := unwritable(t, filepath.Join(md, "new"))
			code, out, errs := runRetrieve(t, password, args...)
			if code != exitUndeliver || !strings.HasPrefix(out, "delivered=0 ") || !strings.Contains(errs, "rename") {
				t.Fatalf("run with new/ unwritable: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if n := onServer(); n != len(msgs) {
				t.Fatalf("the server holds %d after the failed run, want %d", n, len(msgs))
			}
			if n, m := dirLen(t, filepath.Join(md, "new")), dirLen(t, filepath.Join(md, "tmp")); n != 0 || m != 0 {
				t.Fatalf("after the failed run: new/ holds %d, tmp/ %d", n, m)
			}
			restore()
			code, out, errs = runRetrieve(t, password, args...)
			if code != exitOK || out != "delivered=5 skipped=0 deleted=5 bytes=5112\n" {
				t.Fatalf("the next run: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			sameSet(t, maildirFiles(t, md), msgs)
			if n := onServer(); n != 0 {
				t.Fatalf("the server holds %d, want 0", n)
			}
			if n := dirLen(t, filepath.Join(md, "tmp")); n != 0 {
				t.Fatalf("tmp/ holds %d", n)
			}
		})
	}
}

// An mbox that another program holds locked when the group is to be
// appended takes nothing of it: the messages stay on the server, and the
// next run, once the lock is gone, appends each of them once.
func TestRetrieveMboxFlushFails(t *testing.T) {
	old := mboxLockTimeout
	mboxLockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { mboxLockTimeout = old })
	s := poptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", mboxMessages())
	mbox := filepath.Join(t.TempDir(), "inbox.mbox")
	args := []string{"-mbox", mbox, "-retention", "delete", "-ca", writeCA(t, s.CertPEM()), "pop3s://alice@" + s.Addr}
	if code, out, errs := runRetrieve(t, password, args...); code != exitOK {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	before, _ := os.ReadFile(mbox)
	more := [][]byte{[]byte("Subject: four\r\n\r\nFrom later\r\n"), []byte("Subject: five\r\n\r\n")}
	s.SetMessages("alice", more)
	if err := os.WriteFile(mbox+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runRetrieve(t, password, args...)
	if code != exitUndeliver || !strings.HasPrefix(out, "delivered=0 ") || !strings.Contains(errs, "locked") {
		t.Fatalf("run with the mbox locked: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if after, _ := os.ReadFile(mbox); !bytes.Equal(after, before) {
		t.Fatalf("the locked mbox changed: %d bytes, want %d", len(after), len(before))
	}
	if n := len(s.Messages("alice")); n != 2 {
		t.Fatalf("the server holds %d, want 2", n)
	}
	os.Remove(mbox + ".lock")
	if code, out, errs := runRetrieve(t, password, args...); code != exitOK || out != "delivered=2 skipped=0 deleted=2 bytes=46\n" {
		t.Fatalf("run after the lock is gone: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	want := append(mboxMessages(), more...)
	got := mboxBodies(t, mbox)
	if len(got) != len(want) {
		t.Fatalf("the mbox holds %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
}
