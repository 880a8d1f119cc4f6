package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// message returns a CRLF message numbered n with a body of about size
// bytes, including a line that starts with a dot (POP3 stuffs it).
func message(n, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender <sender@example.com>\r\n")
	fmt.Fprintf(&b, "To: Alice <alice@example.com>\r\n")
	fmt.Fprintf(&b, "Subject: message %d\r\n", n)
	fmt.Fprintf(&b, "Message-ID: <%d@dovecottest.example>\r\n", n)
	fmt.Fprintf(&b, "Date: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\n")
	fmt.Fprintf(&b, "Body of message %d.\r\n.a line with a leading dot\r\n", n)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %d of message %d: the quick brown fox jumps over the lazy dog\r\n", i, n)
	}
	return b.Bytes()
}

func messages(n, size int) [][]byte {
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = message(i+1, size)
	}
	return raws
}

// sameMessages fails the test unless got and want hold the same bytes in
// the same order.
func sameMessages(t *testing.T, srv *Server, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d\n%s", what, len(got), len(want), srv.Log())
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: message %d differs:\n got %.120q\nwant %.120q", what, i+1, got[i], want[i])
		}
	}
}

// --- IMAP, with go-imap's client ---

func imapLogin(t *testing.T, srv *Server, implicitTLS bool, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = srv.ClientTLSConfig()
	var c *imapclient.Client
	var err error
	if implicitTLS {
		c, err = imapclient.DialTLS(srv.IMAPSAddr, opts)
	} else {
		c, err = imapclient.DialStartTLS(srv.IMAPAddr, opts)
	}
	if err != nil {
		t.Fatalf("IMAP dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "alice-password").Wait(); err != nil {
		t.Fatalf("IMAP LOGIN: %v\n%s", err, srv.Log())
	}
	return c
}

type imapMessage struct {
	uid imap.UID
	raw []byte
}

// imapFetchAll selects folder and fetches UID and BODY.PEEK[] of every
// message; it returns the UIDVALIDITY and the messages in UID order.
func imapFetchAll(t *testing.T, c *imapclient.Client, folder string) (uint32, []imapMessage) {
	t.Helper()
	sel, err := c.Select(folder, nil).Wait()
	if err != nil {
		t.Fatalf("IMAP SELECT %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("IMAP UID FETCH: %v", err)
	}
	msgs := make([]imapMessage, len(bufs))
	for i, b := range bufs {
		msgs[i] = imapMessage{b.UID, b.FindBodySection(section)}
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].uid <= msgs[i-1].uid {
			t.Fatalf("IMAP FETCH answered out of UID order: %d after %d", msgs[i].uid, msgs[i-1].uid)
		}
	}
	return sel.UIDValidity, msgs
}

func raws(msgs []imapMessage) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.raw
	}
	return out
}

func imapLogout(t *testing.T, c *imapclient.Client) {
	t.Helper()
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("IMAP LOGOUT: %v", err)
	}
}

// --- POP3, with a small line client ---

type popClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// popDial connects to the POP3 (then STLS) or POP3S address and logs in
// with USER/PASS.
func popDial(t *testing.T, srv *Server, implicitTLS bool) *popClient {
	t.Helper()
	addr := srv.POP3Addr
	if implicitTLS {
		addr = srv.POP3SAddr
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("POP3 dial: %v", err)
	}
	if implicitTLS {
		conn = tls.Client(conn, srv.ClientTLSConfig())
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	p := &popClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	p.status()
	if !implicitTLS {
		capa := p.multi("CAPA")
		if !bytes.Contains(capa, []byte("\r\nSTLS\r\n")) && !bytes.HasPrefix(capa, []byte("STLS\r\n")) {
			t.Fatalf("POP3 CAPA lacks STLS: %q", capa)
		}
		p.cmd("STLS")
		if p.r.Buffered() != 0 {
			t.Fatalf("POP3: bytes after the STLS answer")
		}
		tc := tls.Client(conn, srv.ClientTLSConfig())
		if err := tc.Handshake(); err != nil {
			t.Fatalf("POP3 STLS handshake: %v", err)
		}
		p.conn, p.r = tc, bufio.NewReader(tc)
	}
	p.cmd("USER alice")
	p.cmd("PASS alice-password")
	return p
}

// status reads one status line and fails the test unless it is +OK.
func (p *popClient) status() string {
	p.t.Helper()
	line, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("POP3 read: %v", err)
	}
	if !strings.HasPrefix(line, "+OK") {
		p.t.Fatalf("POP3: %q", line)
	}
	return strings.TrimRight(line, "\r\n")
}

func (p *popClient) cmd(line string) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.conn, "%s\r\n", line); err != nil {
		p.t.Fatalf("POP3 write: %v", err)
	}
	return p.status()
}

// multi sends line and returns the multi-line answer, dot-unstuffed, with
// its CRLF line ends.
func (p *popClient) multi(line string) []byte {
	p.t.Helper()
	p.cmd(line)
	var b []byte
	for {
		l, err := p.r.ReadSlice('\n')
		if err != nil {
			p.t.Fatalf("POP3 read: %v", err)
		}
		if string(l) == ".\r\n" {
			return b
		}
		if l[0] == '.' {
			l = l[1:]
		}
		b = append(b, l...)
	}
}

// uidl returns the UIDL listing as message number -> unique id, in order.
func (p *popClient) uidl() []string {
	p.t.Helper()
	var ids []string
	for i, l := range strings.Split(strings.TrimRight(string(p.multi("UIDL")), "\r\n"), "\r\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != fmt.Sprint(i+1) {
			p.t.Fatalf("POP3 UIDL line %q", l)
		}
		ids = append(ids, f[1])
	}
	return ids
}

func (p *popClient) retrAll() [][]byte {
	p.t.Helper()
	n := len(p.uidl())
	out := make([][]byte, n)
	for i := range out {
		out[i] = p.multi(fmt.Sprintf("RETR %d", i+1))
	}
	return out
}

// --- tests ---

func TestStartIMAPAndPOP3OverTLS(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	want := messages(3, 600)
	srv.Seed(t, "alice", "INBOX", want)

	for _, implicit := range []bool{false, true} {
		c := imapLogin(t, srv, implicit, nil)
		if !c.Caps().Has(imap.CapUIDPlus) || !c.Caps().Has(imap.CapIdle) {
			t.Errorf("IMAP capabilities lack UIDPLUS or IDLE: %v", c.Caps())
		}
		_, msgs := imapFetchAll(t, c, "INBOX")
		for i, m := range msgs {
			if m.uid != imap.UID(i+1) {
				t.Errorf("IMAP message %d has UID %d, want %d", i+1, m.uid, i+1)
			}
		}
		sameMessages(t, srv, fmt.Sprintf("IMAP (implicit TLS %v)", implicit), raws(msgs), want)
		imapLogout(t, c)
	}

	for _, implicit := range []bool{false, true} {
		p := popDial(t, srv, implicit)
		ids := p.uidl()
		if len(ids) != 3 || ids[0][:8] != "00000001" || len(ids[0]) != 16 {
			t.Errorf("POP3 UIDL = %q, want %%08Xu%%08Xv values starting with UID 1", ids)
		}
		sameMessages(t, srv, fmt.Sprintf("POP3 (implicit TLS %v)", implicit), p.retrAll(), want)
		p.cmd("QUIT")
	}
	sameMessages(t, srv, "Messages", srv.Messages(t, "alice", "INBOX"), want)
}

func TestCertificateIsVerified(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	block := srv.CAPEM()
	if !bytes.HasPrefix(block, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("CAPEM = %.40q", block)
	}
	// Without trusting the harness's certificate, verification fails.
	conn, err := tls.Dial("tcp", srv.IMAPSAddr, &tls.Config{ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake succeeded without trusting the test certificate")
	}
	// With it, both names it is valid for are accepted.
	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := srv.ClientTLSConfig()
		cfg.ServerName = name
		conn, err := tls.Dial("tcp", srv.POP3SAddr, cfg)
		if err != nil {
			t.Fatalf("TLS with ServerName %q: %v", name, err)
		}
		conn.Close()
	}
}

func TestWrongPasswordFailsQuickly(t *testing.T) {
	t.Parallel()
	srv := Start(t, &Options{Users: map[string]string{"alice": "alice-password", "bob": "bob-password"}})
	c, err := imapclient.DialStartTLS(srv.IMAPAddr, &imapclient.Options{TLSConfig: srv.ClientTLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for _, up := range [][2]string{{"alice", "wrong"}, {"bob", "alice-password"}, {"nobody-here", "x"}} {
		if err := c.Login(up[0], up[1]).Wait(); err == nil {
			t.Fatalf("LOGIN %s with a wrong password succeeded", up[0])
		}
	}
	if err := c.Login("bob", "bob-password").Wait(); err != nil {
		t.Fatalf("LOGIN bob: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three failed logins and one good one took %v; failures should not be delayed", d)
	}
	for _, pw := range []string{"alice-password", "bob-password"} {
		if strings.Contains(srv.Log(), pw) {
			t.Errorf("the log contains the password %q", pw)
		}
	}
}

func TestSeedManyMessages(t *testing.T) {
	srv := Start(t, nil)
	want := messages(2000, 3900)
	start := time.Now()
	srv.Seed(t, "alice", "INBOX", want)
	d := time.Since(start)
	t.Logf("Seed of %d messages (%d KiB each) took %v", len(want), len(want[0])/1024, d)
	if d > 5*time.Second {
		t.Errorf("Seed of 2000 messages took %v", d)
	}
	// Before any session: Messages predicts Dovecot's numbering.
	sameMessages(t, srv, "Messages before a session", srv.Messages(t, "alice", "INBOX"), want)

	c := imapLogin(t, srv, true, nil)
	_, msgs := imapFetchAll(t, c, "INBOX")
	for i, m := range msgs {
		if m.uid != imap.UID(i+1) {
			t.Fatalf("message %d has UID %d", i+1, m.uid)
		}
	}
	sameMessages(t, srv, "IMAP", raws(msgs), want)
	imapLogout(t, c)
	// After it: Messages reads Dovecot's UID list.
	sameMessages(t, srv, "Messages after a session", srv.Messages(t, "alice", "INBOX"), want)

	// Seed again replaces everything.
	again := messages(2, 100)
	srv.Seed(t, "alice", "INBOX", again)
	c = imapLogin(t, srv, false, nil)
	_, msgs = imapFetchAll(t, c, "INBOX")
	sameMessages(t, srv, "IMAP after a second Seed", raws(msgs), again)
	if msgs[0].uid != 1 {
		t.Errorf("after Seed, the first UID is %d, want 1", msgs[0].uid)
	}
	imapLogout(t, c)
}

func TestMessagesReflectsExpungeAndDele(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	all := messages(5, 300)
	srv.Seed(t, "alice", "INBOX", all)

	// IMAP: UID STORE \Deleted + UID EXPUNGE of UID 2.
	c := imapLogin(t, srv, false, nil)
	imapFetchAll(t, c, "INBOX")
	uids := imap.UIDSetNum(2)
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("UID STORE: %v", err)
	}
	if err := c.UIDExpunge(uids).Close(); err != nil {
		t.Fatalf("UID EXPUNGE: %v", err)
	}
	left := [][]byte{all[0], all[2], all[3], all[4]}
	sameMessages(t, srv, "Messages after UID EXPUNGE (session still open)", srv.Messages(t, "alice", "INBOX"), left)
	imapLogout(t, c)

	// POP3: DELE 1 (UID 1), then QUIT commits it.
	p := popDial(t, srv, false)
	sameMessages(t, srv, "POP3 before DELE", p.retrAll(), left)
	p.cmd("DELE 1")
	sameMessages(t, srv, "Messages before QUIT", srv.Messages(t, "alice", "INBOX"), left)
	p.cmd("QUIT")
	left = left[1:]
	sameMessages(t, srv, "Messages after QUIT", srv.Messages(t, "alice", "INBOX"), left)

	// POP3 without QUIT rolls back.
	p = popDial(t, srv, true)
	p.cmd("DELE 1")
	p.conn.Close()
	sameMessages(t, srv, "Messages after DELE without QUIT", srv.Messages(t, "alice", "INBOX"), left)

	// Seed must wait for the aborted session to end, then works.
	srv.Seed(t, "alice", "INBOX", nil)
	if got := srv.Messages(t, "alice", "INBOX"); len(got) != 0 {
		t.Fatalf("after Seed with no messages, %d remain", len(got))
	}
}

func TestResetUIDValidity(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	want := messages(3, 200)
	srv.Seed(t, "alice", "INBOX", want)

	c := imapLogin(t, srv, false, nil)
	v1, msgs := imapFetchAll(t, c, "INBOX")
	// Expunge UID 1 so that renumbering is visible: the rest were 2 and 3.
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(1)).Close(); err != nil {
		t.Fatal(err)
	}
	imapLogout(t, c)
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	p := popDial(t, srv, false)
	uidl1 := p.uidl()
	p.cmd("QUIT")

	srv.ResetUIDValidity(t, "alice", "INBOX")
	if got := srv.UIDValidity(t, "alice", "INBOX"); got == v1 {
		t.Fatalf("UIDValidity still %d", got)
	}

	c = imapLogin(t, srv, true, nil)
	v2, msgs := imapFetchAll(t, c, "INBOX")
	imapLogout(t, c)
	if v2 <= v1 {
		t.Fatalf("UIDVALIDITY went from %d to %d, want a larger one", v1, v2)
	}
	if v2 != srv.UIDValidity(t, "alice", "INBOX") {
		t.Errorf("IMAP says UIDVALIDITY %d, UIDValidity says otherwise", v2)
	}
	if len(msgs) != 2 || msgs[0].uid != 1 || msgs[1].uid != 2 {
		t.Errorf("after the reset, UIDs are %v, want 1 and 2", []imap.UID{msgs[0].uid, msgs[1].uid})
	}
	sameMessages(t, srv, "IMAP after reset", raws(msgs), want[1:])

	p = popDial(t, srv, true)
	uidl2 := p.uidl()
	p.cmd("QUIT")
	for i := range uidl2 {
		for _, old := range uidl1 {
			if uidl2[i] == old {
				t.Errorf("UIDL %s survived the reset", old)
			}
		}
	}
}

func TestAppendSeenByIdleAndNewSession(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	first := message(1, 200)
	srv.Seed(t, "alice", "INBOX", [][]byte{first})

	exists := make(chan uint32, 16)
	c := imapLogin(t, srv, false, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	second := message(2, 300)
	srv.Append(t, "alice", "INBOX", second)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for n := uint32(0); n != 2; {
		select {
		case n = <-exists:
		case <-timeout.C:
			t.Fatalf("IDLE saw no EXISTS 2 within 10 s\n%s", srv.Log())
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	imapLogout(t, c)

	// Append into a folder that does not exist yet creates it.
	third := message(3, 100)
	srv.Append(t, "alice", "Archive.2024", third)

	c = imapLogin(t, srv, true, nil)
	_, msgs := imapFetchAll(t, c, "INBOX")
	sameMessages(t, srv, "IMAP INBOX after Append", raws(msgs), [][]byte{first, second})
	if msgs[1].uid != 2 {
		t.Errorf("appended message has UID %d, want 2", msgs[1].uid)
	}
	_, msgs = imapFetchAll(t, c, "Archive.2024")
	sameMessages(t, srv, "IMAP Archive.2024 after Append", raws(msgs), [][]byte{third})
	imapLogout(t, c)

	p := popDial(t, srv, false)
	sameMessages(t, srv, "POP3 after Append", p.retrAll(), [][]byte{first, second})
	p.cmd("QUIT")
	sameMessages(t, srv, "Messages", srv.Messages(t, "alice", "INBOX"), [][]byte{first, second})
}

func TestSeedFolderAndUsers(t *testing.T) {
	t.Parallel()
	srv := Start(t, &Options{Users: map[string]string{"alice": "alice-password", "bob@example.com": "b0b"}})
	archive := messages(4, 100)
	srv.Seed(t, "alice", "Archive", archive)
	srv.Seed(t, "bob@example.com", "INBOX", archive[:1])

	c := imapLogin(t, srv, false, nil)
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	if strings.Join(names, ",") != "Archive,INBOX" && strings.Join(names, ",") != "INBOX,Archive" {
		t.Errorf("LIST = %v, want INBOX and Archive", names)
	}
	_, msgs := imapFetchAll(t, c, "Archive")
	sameMessages(t, srv, "IMAP Archive", raws(msgs), archive)
	_, msgs = imapFetchAll(t, c, "INBOX")
	if len(msgs) != 0 {
		t.Errorf("alice's INBOX has %d messages", len(msgs))
	}
	imapLogout(t, c)
	sameMessages(t, srv, "Messages Archive", srv.Messages(t, "alice", "Archive"), archive)
	sameMessages(t, srv, "Messages bob", srv.Messages(t, "bob@example.com", "INBOX"), archive[:1])
	if got := srv.Messages(t, "alice", "Nonexistent"); len(got) != 0 {
		t.Errorf("a folder that does not exist has %d messages", len(got))
	}
}

// TestLineEndings records how Dovecot serves a Maildir file whose lines end
// in bare LF: both protocols convert to CRLF, so only CRLF messages come
// back byte for byte.
func TestLineEndings(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	lf := []byte("From: a@example.com\nSubject: bare LF\n\nline one\n.dot line\nline three\n")
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	srv.Seed(t, "alice", "INBOX", [][]byte{lf})
	sameMessages(t, srv, "Messages keeps the stored bytes", srv.Messages(t, "alice", "INBOX"), [][]byte{lf})

	c := imapLogin(t, srv, false, nil)
	_, msgs := imapFetchAll(t, c, "INBOX")
	// The file name's W= gives RFC822.SIZE: the size with CRLF.
	sizes, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{RFC822Size: true}).Collect()
	if err != nil || len(sizes) != 1 || sizes[0].RFC822Size != int64(len(crlf)) {
		t.Fatalf("RFC822.SIZE: %v, %v; want %d", sizes, err, len(crlf))
	}
	imapLogout(t, c)
	p := popDial(t, srv, false)
	if got, want := p.cmd("LIST 1"), fmt.Sprintf("+OK 1 %d", len(crlf)); got != want {
		t.Fatalf("LIST 1 = %q, want %q", got, want)
	}
	pop := p.retrAll()
	p.cmd("QUIT")
	sameMessages(t, srv, "IMAP serves bare LF as CRLF", raws(msgs), [][]byte{crlf})
	sameMessages(t, srv, "POP3 serves bare LF as CRLF", pop, [][]byte{crlf})
}

func TestFilesUnderTempDir(t *testing.T) {
	t.Parallel()
	srv := Start(t, &Options{onDisk: true})
	if !strings.HasPrefix(srv.Dir, os.TempDir()) {
		t.Fatalf("Dir = %s, want it under %s", srv.Dir, os.TempDir())
	}
	want := messages(3, 100)
	srv.Seed(t, "alice", "INBOX", want)
	p := popDial(t, srv, true)
	sameMessages(t, srv, "POP3", p.retrAll(), want)
	p.cmd("DELE 3")
	p.cmd("QUIT")
	sameMessages(t, srv, "Messages", srv.Messages(t, "alice", "INBOX"), want[:2])
}

func TestStartRetriesATakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	srv := Start(t, &Options{ports: func(n int) ([]int, error) {
		calls++
		ports, err := freePorts(n)
		if calls == 1 && err == nil {
			ports[2] = taken.Addr().(*net.TCPAddr).Port // POP3
		}
		return ports, err
	}})
	if calls != 2 {
		t.Errorf("ports were picked %d times, want 2", calls)
	}
	if srv.POP3Addr == taken.Addr().String() {
		t.Errorf("POP3 is on the taken port")
	}
	if !strings.Contains(srv.Log(), "Address already in use") {
		t.Errorf("the log does not show the first attempt's failure:\n%s", srv.Log())
	}
	p := popDial(t, srv, false)
	p.cmd("QUIT")
}

func TestBadConfigFailsWithLog(t *testing.T) {
	t.Parallel()
	rec := &recorder{TB: t}
	srv := start(rec, &Options{ExtraConfig: "no_such_setting = 1"}, os.Getenv, fallbackDirs)
	if srv != nil || !rec.failed {
		t.Fatalf("a bad configuration did not fail Start: failed=%v skipped=%v", rec.failed, rec.skipped)
	}
	if !strings.Contains(rec.msg, "no_such_setting") || !strings.Contains(rec.msg, "exited during start-up") {
		t.Errorf("the failure does not show Dovecot's complaint:\n%s", rec.msg)
	}
}

func TestConfigIsValid(t *testing.T) {
	t.Parallel()
	srv := Start(t, &Options{ExtraConfig: "mail_debug = no"})
	out, err := exec.Command(srv.dovecot, "-n", "-c", srv.conf).CombinedOutput()
	if err != nil {
		t.Fatalf("dovecot -n: %v\n%s", err, out)
	}
	all, err := exec.Command(srv.dovecot, "-a", "-c", srv.conf).CombinedOutput()
	if err != nil {
		t.Fatalf("dovecot -a: %v\n%s", err, all)
	}
	if !strings.Contains(string(all), "pop3_uidl_format = %08Xu%08Xv") {
		t.Error("pop3_uidl_format is not %08Xu%08Xv")
	}
	for _, want := range []string{"protocols = imap pop3", "ssl = yes", "disable_plaintext_auth = no", "mail_location = maildir:~/Maildir"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dovecot -n lacks %q", want)
		}
	}
	if strings.Contains(string(out), "!include") {
		t.Error("the configuration includes other files")
	}
}

func TestStartAndStopTime(t *testing.T) {
	const n = 5
	var total, stopTotal time.Duration
	for i := range n {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			start := time.Now()
			srv := Start(t, nil)
			d := time.Since(start)
			total += d
			t.Cleanup(func() {}) // runs after the stop registered by Start
			begin := time.Now()
			srv.stop()
			stopTotal += time.Since(begin)
			if groupAlive(srv.cmd.Process.Pid) {
				t.Error("Dovecot processes are left after stop")
			}
		})
	}
	t.Logf("Start: %v on average; stop: %v on average", total/n, stopTotal/n)
	if total/n > 2*time.Second {
		t.Errorf("Start takes %v on average", total/n)
	}
}

func TestSeedWaitsForOpenSession(t *testing.T) {
	t.Parallel()
	srv := Start(t, nil)
	srv.Seed(t, "alice", "INBOX", messages(1, 100))
	c := imapLogin(t, srv, false, nil)
	imapFetchAll(t, c, "INBOX")

	srv.sessionWait = 200 * time.Millisecond
	rec := &recorder{TB: t}
	srv.Seed(rec, "alice", "INBOX", messages(2, 100))
	if !rec.failed || !strings.Contains(rec.msg, "still open") {
		t.Fatalf("Seed with an open session: failed=%v %q", rec.failed, rec.msg)
	}
	if got := srv.Messages(t, "alice", "INBOX"); len(got) != 1 {
		t.Fatalf("Seed changed the folder although it failed: %d messages", len(got))
	}
	rec = &recorder{TB: t}
	srv.ResetUIDValidity(rec, "alice", "INBOX")
	if !rec.failed {
		t.Fatal("ResetUIDValidity with an open session did not fail")
	}
	imapLogout(t, c)
	srv.sessionWait = 5 * time.Second
	srv.Seed(t, "alice", "INBOX", messages(2, 100))
}

// recorder is a testing.TB that records Skipf and Fatalf instead of ending
// the test, to test the harness's own decisions.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}

func TestMissingDovecotSkipsOrFails(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		require  string
		wantSkip bool
	}{
		{"", true}, {"0", true}, {"1", false}, {"true", false},
	} {
		env := map[string]string{"PATH": empty, RequireEnv: tc.require}
		rec := &recorder{TB: t}
		srv := start(rec, nil, func(k string) string { return env[k] }, nil)
		if srv != nil {
			t.Fatalf("%s=%q: got a server without dovecot", RequireEnv, tc.require)
		}
		if rec.skipped != tc.wantSkip || rec.failed == tc.wantSkip {
			t.Errorf("%s=%q: skipped=%v failed=%v, want skipped=%v", RequireEnv, tc.require, rec.skipped, rec.failed, tc.wantSkip)
		}
		if !strings.Contains(rec.msg, "Dovecot is not installed") || strings.Contains(rec.msg, "\n") {
			t.Errorf("reason is not one line naming the cause: %q", rec.msg)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := lookPath(dir, nil); err == nil || !strings.Contains(err.Error(), "dovecot") {
		t.Fatalf("empty dir: %v", err)
	}
	exe("dovecot", 0o644) // not executable
	if _, _, err := lookPath(dir, nil); err == nil {
		t.Fatal("a non-executable dovecot was accepted")
	}
	os.Remove(filepath.Join(dir, "dovecot"))
	exe("dovecot", 0o755)
	if _, _, err := lookPath(dir, nil); err == nil || !strings.Contains(err.Error(), "doveadm") {
		t.Fatalf("without doveadm: %v", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "doveadm"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	d, a, err := lookPath("relative/dir"+string(os.PathListSeparator)+dir, []string{other})
	if err != nil || d != filepath.Join(dir, "dovecot") || a != filepath.Join(other, "doveadm") {
		t.Fatalf("lookPath = %q, %q, %v", d, a, err)
	}
}

func TestBadOptionsFail(t *testing.T) {
	for _, users := range []map[string]string{
		{"a:b": "x"}, {".hidden": "x"}, {"alice": "pass:word"}, {"alice": "line\nbreak"}, {"alice": ""},
	} {
		rec := &recorder{TB: t}
		if srv := start(rec, &Options{Users: users}, os.Getenv, fallbackDirs); srv != nil || !(rec.failed || rec.skipped) {
			t.Errorf("users %q were accepted", users)
		}
	}
}

func TestMaildirSortCmp(t *testing.T) {
	ordered := []string{
		"999999999.P1Q1.host",
		"1000000000.M5P1.host",
		"1000000000.M20P1.host:2,S",
		"1000000001.P1Q1.a",
		"1000000001.P1Q1.b",
	}
	for i := range ordered {
		for j := range ordered {
			got := maildirSortCmp(ordered[i], ordered[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("maildirSortCmp(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}

func TestReadUIDList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dovecot-uidlist")
	content := "3 V1795630808 N4 G0123456789abcdef0123456789abcdef\n" +
		"1 :1000.P1Q1.host\n" +
		"3 W120 S118 :1002.P1Q3.host:2,S\n" +
		"4 :1003.P1Q4.hos" // partial last line
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ul, err := readUIDList(path)
	if err != nil {
		t.Fatal(err)
	}
	if ul.uidValidity != 1795630808 || len(ul.uids) != 2 || ul.uids["1000.P1Q1.host"] != 1 || ul.uids["1002.P1Q3.host"] != 3 {
		t.Fatalf("readUIDList = %+v", ul)
	}
}
