// Package mailaccesstest is the conformance suite that every
// mailaccess.Mailbox implementation passes, in the spirit of
// testing/fstest.TestFS: a driver's tests call Run with a Server that
// seeds and inspects a real mail drop, and the suite checks listing,
// byte-exact fetching, every retention through the Fetcher, commit and
// abort, a dropped connection at every step (nothing lost, nothing
// delivered twice), state resumption across sessions, UID resets and a
// large message.
//
// Connections go through a fault-injecting TCP proxy, so the suite needs
// no knowledge of the protocol to cut a conversation at every command and
// response boundary.
//
// TestState is the conformance suite of a mailaccess.State (and of its
// IncrementalState methods): MemoryState, FileState and the SQL State of
// package sqlstate pass it, and so should a State that a program keeps in
// its own database.
package mailaccesstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// Server is a mail server holding one mail drop, as seen by the suite.
type Server interface {
	// Seed replaces the content of the mail drop with msgs, in order.
	// Messages use CRLF line ends and end with CRLF.
	Seed(t testing.TB, msgs [][]byte)
	// Contents returns the raw bytes of the messages now in the mail drop,
	// in order.
	Contents(t testing.TB) [][]byte
	// Addr is the server's host:port.
	Addr() string
	// Dial opens a Mailbox on the mail drop through addr, which is either
	// Addr or the address of a proxy in front of it.
	Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error)
}

// FolderServer is a Server with more than one folder; the suite then
// checks MoveTo.
type FolderServer interface {
	Server
	// FolderContents returns the raw bytes of the messages in folder.
	FolderContents(t testing.TB, folder string) [][]byte
}

// UIDResetter is a Server that can renumber the UIDs of its mail drop
// (an IMAP UIDVALIDITY change, a POP3 server that renumbers UIDLs).
type UIDResetter interface {
	Server
	// ResetUIDs gives every message in the mail drop a new UID.
	ResetUIDs(t testing.TB)
}

// Options tunes Run.
type Options struct {
	// LargeSize is the size of the large-message test; 0 means 20 MiB.
	LargeSize int
	// Short skips the slower parts: the large message and the cut at every
	// boundary (only a sample of cut points is tried).
	Short bool
}

// Run runs the conformance suite. newServer is called once per subtest
// and must return a Server whose mail drop may be seeded freely.
func Run(t *testing.T, newServer func(t *testing.T) Server, opts *Options) {
	if opts == nil {
		opts = &Options{}
	}
	t.Run("ListAndOpen", func(t *testing.T) { testListAndOpen(t, newServer(t)) })
	t.Run("NameIsStable", func(t *testing.T) { testName(t, newServer(t)) })
	t.Run("DeleteCommit", func(t *testing.T) { testDeleteCommit(t, newServer(t)) })
	t.Run("DeleteAbort", func(t *testing.T) { testDeleteAbort(t, newServer(t)) })
	t.Run("OpenGone", func(t *testing.T) { testOpenGone(t, newServer(t)) })
	t.Run("RetentionKeep", func(t *testing.T) { testKeep(t, newServer(t)) })
	t.Run("RetentionDelete", func(t *testing.T) { testDelete(t, newServer(t)) })
	t.Run("RetentionKeepFor", func(t *testing.T) { testKeepFor(t, newServer(t)) })
	t.Run("RetentionMove", func(t *testing.T) { testMove(t, newServer(t)) })
	t.Run("HandlerRefuses", func(t *testing.T) { testHandlerRefuses(t, newServer(t)) })
	t.Run("MaxSize", func(t *testing.T) { testMaxSize(t, newServer(t)) })
	t.Run("StateAcrossSessions", func(t *testing.T) { testFileState(t, newServer(t)) })
	t.Run("UIDReset", func(t *testing.T) { testUIDReset(t, newServer(t)) })
	for _, ret := range []mailaccess.Retention{mailaccess.KeepOnServer, mailaccess.DeleteAfterFetch} {
		t.Run("DropEveryStep/"+ret.String(), func(t *testing.T) { testDrops(t, newServer, ret, opts.Short) })
	}
	t.Run("Large", func(t *testing.T) {
		if opts.Short {
			t.Skip("short: large message skipped")
		}
		size := opts.LargeSize
		if size == 0 {
			size = 20 << 20
		}
		testLarge(t, newServer(t), size)
	})
}

// Sample returns the messages the suite seeds: plain text, lines that
// begin with dots (POP3 dot-stuffing), a lone "." line, 8-bit bytes, a
// long line, and a MIME multipart.
func Sample() [][]byte {
	return [][]byte{
		crlf("From: a@example.com\nTo: b@example.com\nSubject: one\nMessage-ID: <1@example.com>\n\nHello.\n"),
		crlf("From: c@example.com\nSubject: dots\nMessage-ID: <2@example.com>\n\n.\n..\n.leading dot\n...\nend\n"),
		crlf("From: d@example.com\nSubject: =?utf-8?q?caf=C3=A9?=\nMessage-ID: <3@example.com>\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\ncaf\xe9 " + strings.Repeat("x", 1500) + "\n"),
		crlf("From: e@example.com\nSubject: multi\nMessage-ID: <4@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b--\n"),
	}
}

// Message returns a small, distinct CRLF message numbered n.
func Message(n int) []byte {
	return crlf(fmt.Sprintf("From: sender@example.com\nTo: rcpt@example.com\nSubject: message %d\nMessage-ID: <%d.suite@example.com>\n\nThis is message %d.\n", n, n, n))
}

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, s Server) mailaccess.Mailbox {
	t.Helper()
	mb, err := s.Dial(ctxT(t), s.Addr())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { mb.Abort() })
	return mb
}

func readAll(t testing.TB, mb mailaccess.Mailbox, uid mailaccess.UID) []byte {
	t.Helper()
	rc, err := mb.Open(ctxT(t), uid)
	if err != nil {
		t.Fatalf("Open(%s): %v", uid, err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", uid, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("closing %s: %v", uid, err)
	}
	return b
}

func sameMessages(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: message %d differs:\n got %q\nwant %q", what, i, clip(got[i]), clip(want[i]))
		}
	}
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}
