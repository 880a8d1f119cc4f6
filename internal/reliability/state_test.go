package reliability

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/deliver"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// journalRecords returns the fingerprints of the "P" (delivered) lines of
// a state journal, complete lines only.
func journalRecords(data []byte) map[sum]bool {
	out := map[sum]bool{}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out
		}
		f := strings.Fields(string(data[:i]))
		data = data[i+1:]
		if len(f) == 7 && f[0] == "P" {
			var s sum
			if b, err := hex.DecodeString(f[6]); err == nil && len(b) == len(s) {
				copy(s[:], b)
				out[s] = true
			}
		}
	}
}

// dovecotAccount starts a Dovecot and returns alice's account on it and
// a CA file for the retrieve command.
func dovecotAccount(t *testing.T, protocol string) *account {
	d := dovecottest.Start(t, nil)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, d.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &account{d: d, user: user, protocol: protocol, ca: ca}
}

// TestTornStateRetrieve kills retrieve runs at random moments, cuts their
// state file at a random offset (as a crash in the middle of a write, or
// worse, would leave it), and runs again to completion: nothing is lost,
// and every extra copy in the Maildir is accounted for by a kill (one
// group of tornBatch messages at most) or by a record that the cut
// removed.
func TestTornStateRetrieve(t *testing.T) {
	const tornBatch = 8
	bin := retrieveBinary(t)
	rounds := 6
	if long() {
		rounds = 100
	}
	seed := killSeed(t)
	t.Logf("kill delays and cut offsets from UNIMAIL_KILL_SEED=%d", seed)
	for i, protocol := range []string{"pop3", "imap"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			a := dovecotAccount(t, protocol)
			r := rand.New(rand.NewPCG(seed+uint64(i), 0x7041))
			dir := fastDir(t)
			msgs := corpus(40, "torn-"+protocol)
			var kills, removed, dups int
			for round := range rounds {
				for _, ret := range []string{"keep", "delete"} {
					a.d.Seed(t, user, "INBOX", msgs)
					base := filepath.Join(dir, ret+strconv.Itoa(round))
					rc := retrieveCmd{bin: bin, maildir: filepath.Join(base, "Maildir"), state: filepath.Join(base, "state"), retention: ret, url: a.url(), ca: a.ca, batch: tornBatch}
					// A run killed somewhere in its work (or not, if it
					// is quick).
					cmd, _, _ := rc.command(t.Context())
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					exited := make(chan error, 1)
					go func() { exited <- cmd.Wait() }()
					k := 0
					select {
					case <-exited:
					case <-time.After(time.Duration(r.Int64N(int64(150 * time.Millisecond)))):
						cmd.Process.Kill()
						<-exited
						k = 1
					}
					data, err := os.ReadFile(rc.state)
					if err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
					cut := 0
					if len(data) > 0 {
						cut = r.IntN(len(data) + 1)
					}
					// Every record the cut touches may come back as a
					// duplicate: the complete lines after it, and the
					// line it tears.
					lost := len(journalRecords(data)) - len(journalRecords(data[:cut]))
					if err := os.WriteFile(rc.state, data[:cut], 0o600); err != nil && len(data) > 0 {
						t.Fatal(err)
					}
					if _, err := rc.complete(t.Context()); err != nil {
						t.Fatalf("round %d %s: the run after a cut at %d of %d bytes: %v", round, ret, cut, len(data), err)
					}
					n, err := checkMaildir(msgs, a.d.Messages(t, user, "INBOX"), rc.maildir, true, ret, k*tornBatch+lost)
					if err != nil {
						t.Fatalf("round %d %s (seed %d), kill %d, state cut at %d of %d bytes (%d records removed): %v", round, ret, seed, k, cut, len(data), lost, err)
					}
					kills += k
					removed += lost
					dups += n
				}
			}
			t.Logf("%s: %d runs, %d kills, %d records removed by cuts; 0 messages lost, %d duplicates (bound %d)", protocol, 2*rounds, kills, removed, dups, kills*tornBatch+removed)
		})
	}
}

// TestTornLastLine tears the last line of a state journal at every byte
// offset and runs again (against Dovecot, delivering into a Maildir): the
// journal opens, and exactly the message of the torn record is delivered
// again; nothing else is.
func TestTornLastLine(t *testing.T) {
	a := dovecotAccount(t, "imap")
	msgs := corpus(4, "lastline")
	a.d.Seed(t, user, "INBOX", msgs)
	dir := fastDir(t)
	ctx := t.Context()
	fetch := func(statePath, maildir string) (*ledger, error) {
		st, err := mailaccess.OpenFileState(statePath)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		md, err := deliver.OpenMaildir(maildir)
		if err != nil {
			return nil, err
		}
		mb, err := imap.Dial(ctx, a.d.IMAPSAddr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: user, Password: password}, TLSConfig: a.d.ClientTLSConfig(), Timeout: 10 * time.Second}})
		if err != nil {
			return nil, err
		}
		l := newLedger()
		_, err = (&mailaccess.Fetcher{State: &watchState{State: st, l: l}}).Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
			var buf bytes.Buffer
			if _, _, err := md.Deliver(io.TeeReader(m.Body, &buf)); err != nil {
				return err
			}
			return l.handle(ctx, &mailaccess.Message{Body: &buf})
		})
		return l, err
	}
	full := filepath.Join(dir, "full")
	if _, err := fetch(full, filepath.Join(dir, "Maildir")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	last := journalRecords(data[start:])
	if len(last) != 1 {
		t.Fatalf("the last line of the journal is not a record: %q", data[start:])
	}
	for off := start; off <= len(data); off++ {
		p := filepath.Join(dir, "cut"+strconv.Itoa(off))
		if err := os.WriteFile(p, data[:off], 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := fetch(p, filepath.Join(dir, "Maildir-"+strconv.Itoa(off)))
		if err != nil {
			t.Fatalf("last line torn at %d of %d: %v", off-start, len(data)-start, err)
		}
		want := 1
		if off == len(data) {
			want = 0
		}
		got := 0
		for s, n := range l.delivered {
			if !last[s] {
				t.Fatalf("torn at %d: a message whose record was intact was delivered again", off-start)
			}
			got += n
		}
		if got != want {
			t.Fatalf("torn at %d of %d: %d deliveries, want %d", off-start, len(data)-start, got, want)
		}
	}
	if n := len(a.d.Messages(t, user, "INBOX")); n != len(msgs) {
		t.Fatalf("keep: the server holds %d, want %d", n, len(msgs))
	}
	t.Logf("last line of %d bytes torn at each of its %d offsets: the journal opened every time, and only its record's message came again", len(data)-start, len(data)-start+1)
}

// TestStateWriteFails makes the State fail after a few groups, as on a
// full disk, with the in-process servers: the write error ends the run
// with ErrState, nothing unrecorded is deleted or moved, and a run with
// a working State finishes with at most the one group whose records
// failed delivered twice. It runs with groups of one message (so that
// the State fails after 0, 1 or 3 records, and the bound is one
// message), and with the default groups failing at once (the bound is
// then every message of the run, one group).
func TestStateWriteFails(t *testing.T) {
	for _, srv := range []struct {
		protocol string
		new      func(t *testing.T) memServer
	}{{"pop3", newPopMem}, {"imap", newIMAPMem}} {
		for _, ret := range retentions(srv.protocol) {
			for _, c := range []struct {
				after int
				batch mailaccess.Batch
			}{{0, mailaccess.Batch{Messages: 1}}, {1, mailaccess.Batch{Messages: 1}}, {3, mailaccess.Batch{Messages: 1}}, {0, mailaccess.Batch{}}} {
				after := c.after
				sc := newScenario(ret)
				if after >= len(sc.more) {
					continue
				}
				bound, name := 1, fmt.Sprintf("%s/%s/after%d", srv.protocol, ret, after)
				if c.batch.Messages == 0 {
					bound, name = len(sc.more), name+"/default-groups"
				}
				t.Run(name, func(t *testing.T) {
					msgs := sc.all()
					s := srv.new(t)
					l := newLedger()
					mem := &mailaccess.MemoryState{}
					st := &watchState{State: mem, l: l}
					if err := sc.prepare(t.Context(), s, st, l); err != nil {
						t.Fatal(err)
					}
					st.failAfter = st.puts + after
					if after == 0 {
						st.failAfter = -1 // fail at once
					}
					err := runOnceBatch(t.Context(), s, ret, &failing{st}, l, 10*time.Second, sc.at, c.batch)
					if !errors.Is(err, mailaccess.ErrState) || !errors.Is(err, errDiskFull) {
						t.Fatalf("run with a failing State: %v, want ErrState wrapping the write error", err)
					}
					if err := s.waitIdle(t.Context()); err != nil {
						t.Fatal(err)
					}
					if err := checkSafe(msgs, s.inbox(), s.folder(), l); err != nil {
						t.Fatal(err)
					}
					st.failAfter = 0
					if err := retry(t.Context(), func() error { return runOnceBatch(t.Context(), s, ret, st, l, 10*time.Second, sc.at, c.batch) }); err != nil {
						t.Fatalf("run with a working State: %v", err)
					}
					dups, err := checkDone(ret, msgs, s.inbox(), s.folder(), l, sc.kept, bound)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%d duplicates (bound %d)", dups, bound)
				})
			}
		}
	}
}

// failing turns watchState's failAfter -1 into "fail every Put".
type failing struct{ *watchState }

func (f *failing) Put(ctx context.Context, mailbox string, recs ...mailaccess.Record) error {
	if f.failAfter < 0 {
		return errDiskFull
	}
	return f.watchState.Put(ctx, mailbox, recs...)
}

// TestFullDisk runs retrieve with its state on a small tmpfs (16 pages:
// 64 KiB with 4 KiB pages) that fills
// up in the middle of the run: the write error ends the run (exit 1, the
// error on stderr), no message is deleted that the journal does not
// record, and once there is room again a run finishes with at most one
// group (whose records failed) delivered twice. retrieve runs with groups
// of fullBatch messages, so that the disk fills after some groups.
func TestFullDisk(t *testing.T) {
	const fullBatch = 8
	bin := retrieveBinary(t)
	small := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(small, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(16*os.Getpagesize()), "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs for the state (needs root and CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", small).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", small, err, out)
		}
	})
	for _, protocol := range []string{"pop3", "imap"} {
		t.Run(protocol, func(t *testing.T) {
			a := dovecotAccount(t, protocol)
			// One page of journal holds some 27 records of 150 bytes
			// (with 4 KiB pages): the run must need more.
			msgs := corpus(max(80, 2*os.Getpagesize()/140), "full-"+protocol)
			a.d.Seed(t, user, "INBOX", msgs)
			state := filepath.Join(small, protocol+".state")
			filler := filepath.Join(small, "filler")
			leave := fillDisk(t, filler, int64(os.Getpagesize()))
			rc := retrieveCmd{bin: bin, maildir: filepath.Join(fastDir(t), "Maildir"), state: state, retention: "delete", url: a.url(), ca: a.ca, batch: fullBatch}

			cmd, _, errb := rc.command(t.Context())
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "state") || !strings.Contains(errb.String(), "no space left") {
				t.Fatalf("retrieve with a full disk: %v, stderr %q; want exit 1 and the state's write error", err, errb)
			}
			data, _ := os.ReadFile(state)
			recorded := journalRecords(data)
			onServer := tally(a.d.Messages(t, user, "INBOX"))
			counts, err := maildirCounts(rc.maildir)
			if err != nil {
				t.Fatal(err)
			}
			deleted := 0
			for i, m := range msgs {
				if onServer[sha(m)] == 0 {
					deleted++
					if !recorded[sha(m)] || counts[sha(m)] == 0 {
						t.Fatalf("message %d was deleted but recorded=%v, in the Maildir %d times", i, recorded[sha(m)], counts[sha(m)])
					}
				}
			}
			if deleted == 0 || deleted == len(msgs) {
				t.Fatalf("%d of %d deleted: the disk did not fill in the middle of the run (%d bytes left)", deleted, len(msgs), leave)
			}
			firstErr := strings.TrimSpace(errb.String())

			// Still full: the next run cannot even compact the journal; it
			// fails before it touches the server.
			before := len(a.d.Messages(t, user, "INBOX"))
			cmd, _, errb = rc.command(t.Context())
			if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "no space left") {
				t.Fatalf("retrieve on a still-full disk: %v, stderr %q; want the state's write error", err, errb)
			}
			if n := len(a.d.Messages(t, user, "INBOX")); n != before {
				t.Fatalf("a run that could not write its state changed the server: %d then %d messages", before, n)
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			if _, err := rc.complete(t.Context()); err != nil {
				t.Fatalf("run with room again: %v", err)
			}
			dups, err := checkMaildir(msgs, a.d.Messages(t, user, "INBOX"), rc.maildir, true, "delete", fullBatch)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(state)
			os.Remove(state + ".lock")
			t.Logf("%s: the disk filled after %d of %d messages (%q); nothing unrecorded deleted; %d duplicates after the rerun (bound %d, one group)", protocol, deleted, len(msgs), firstErr, dups, fullBatch)
		})
	}
}

// fillDisk fills the file system of path with the file path, then frees
// about room bytes; it returns the room left.
func fillDisk(t *testing.T, path string, room int64) int64 {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	st, _ := f.Stat()
	if err := f.Truncate(max(0, st.Size()-room)); err != nil {
		t.Fatal(err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &fs); err != nil {
		t.Fatal(err)
	}
	return int64(fs.Bavail) * fs.Bsize
}

// TestTwoProcessesOneState runs two retrieve commands on one state file:
// the second is refused with a clear "in use" error and touches nothing;
// once the first has ended, it runs.
func TestTwoProcessesOneState(t *testing.T) {
	bin := retrieveBinary(t)
	a := dovecotAccount(t, "pop3")
	msgs := corpus(5, "two")
	a.d.Seed(t, user, "INBOX", msgs)
	dir := fastDir(t)
	state := filepath.Join(dir, "state")

	// The first process holds the state while it waits for a server that
	// accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	first := retrieveCmd{bin: bin, maildir: filepath.Join(dir, "Maildir1"), state: state, retention: "delete", url: "pop3s://alice@" + ln.Addr().String(), ca: a.ca}
	cmd1, _, _ := first.command(t.Context())
	if err := cmd1.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd1.Process.Kill()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the first process never connected")
	}

	second := retrieveCmd{bin: bin, maildir: filepath.Join(dir, "Maildir2"), state: state, retention: "delete", url: a.url(), ca: a.ca}
	cmd2, out, errb := second.command(t.Context())
	err = cmd2.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "in use") {
		t.Fatalf("second process on the same state: %v, stdout %q, stderr %q; want exit 1 and an in-use error", err, out, errb)
	}
	if n := len(a.d.Messages(t, user, "INBOX")); n != len(msgs) {
		t.Fatalf("the refused process changed the server: %d messages, want %d", n, len(msgs))
	}
	if counts, _ := maildirCounts(second.maildir); len(counts) != 0 {
		t.Fatalf("the refused process delivered %d messages", len(counts))
	}
	t.Logf("second process refused: %s", strings.TrimSpace(errb.String()))

	cmd1.Process.Kill()
	cmd1.Wait()
	if _, err := second.complete(t.Context()); err != nil {
		t.Fatalf("second process after the first ended: %v", err)
	}
	if _, err := checkMaildir(msgs, a.d.Messages(t, user, "INBOX"), second.maildir, true, "delete", 0); err != nil {
		t.Fatal(err)
	}
}
