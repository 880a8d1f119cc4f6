package imaptest_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/unimail/unimail/imap/imaptest"
)

const (
	user     = "alice"
	password = "secret-pw"
)

func message(subject, body string) []byte {
	return []byte("From: bob@example.com\r\nTo: alice@example.com\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n")
}

// oddMessages are messages that a server must send back unchanged although
// they are not well-formed.
var oddMessages = [][]byte{
	message("plain", "Hello."),
	[]byte("Subject: bare LF\n\nline one\nline two\n"),
	[]byte("no header at all\r\njust text\r\n"),
	[]byte("Subject: a\r\nBroken header line\r\nFrom: x\r\n\r\nbody\r\n"),
	[]byte("Subject: header only\r\n"),
	[]byte("Subject: 8bit \xe9\xff\r\n\r\n\x80\x81 caf\xc3\xa9\r\n"),
	[]byte(" leading: whitespace\r\n\r\nbody\r\n"),
}

// newServer starts a cleartext server with the user alice.
func newServer(t *testing.T, cfg *imaptest.Config) *imaptest.Server {
	t.Helper()
	s := imaptest.NewServer(t, cfg)
	s.AddUser(user, password)
	return s
}

func closeOnCleanup(t *testing.T, c *imapclient.Client) *imapclient.Client {
	t.Cleanup(func() { c.Close() })
	return c
}

func dialInsecure(t *testing.T, s *imaptest.Server, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr, opts)
	if err != nil {
		t.Fatalf("DialInsecure: %v", err)
	}
	return closeOnCleanup(t, c)
}

func dialStartTLS(t *testing.T, s *imaptest.Server, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = s.ClientTLSConfig()
	c, err := imapclient.DialStartTLS(s.Addr, opts)
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	return closeOnCleanup(t, c)
}

// loggedIn dials with STARTTLS, logs in as alice and selects folder.
func loggedIn(t *testing.T, s *imaptest.Server, folder string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := dialStartTLS(t, s, opts)
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if folder != "" {
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			t.Fatalf("Select %s: %v", folder, err)
		}
	}
	return c
}

func wantIMAPError(t *testing.T, err error, typ imap.StatusResponseType, code imap.ResponseCode) {
	t.Helper()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		t.Fatalf("error = %v, want an IMAP %s [%s]", err, typ, code)
	}
	if imapErr.Type != typ || imapErr.Code != code {
		t.Fatalf("error = %s [%s] %q, want %s [%s]", imapErr.Type, imapErr.Code, imapErr.Text, typ, code)
	}
}

func hasCaps(t *testing.T, caps imap.CapSet, want []imap.Cap, notWant []imap.Cap) {
	t.Helper()
	for _, c := range want {
		if _, ok := caps[c]; !ok {
			t.Errorf("capabilities %v lack %s", caps, c)
		}
	}
	for _, c := range notWant {
		if _, ok := caps[c]; ok {
			t.Errorf("capabilities %v have %s", caps, c)
		}
	}
}

func commandNames(s *imaptest.Server) []string {
	var names []string
	for _, c := range s.Commands() {
		names = append(names, c.Name)
	}
	return names
}

func allUIDs(t *testing.T, c *imapclient.Client) []imap.UID {
	t.Helper()
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH: %v", err)
	}
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	return uids
}

func TestLogin(t *testing.T) {
	s := newServer(t, nil)
	c := dialInsecure(t, s, nil)
	hasCaps(t, c.Caps(), []imap.Cap{imap.CapIMAP4rev1, imap.CapStartTLS, "AUTH=PLAIN", imap.CapSASLIR},
		[]imap.Cap{imap.CapLoginDisabled, imap.CapIMAP4rev2, "AUTH=XOAUTH2"})

	err := c.Login(user, "wrong").Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed)
	if err := c.Login("nobody", password).Wait(); err == nil {
		t.Fatal("Login of an unknown user succeeded")
	}
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	hasCaps(t, c.Caps(),
		[]imap.Cap{imap.CapIMAP4rev1, imap.CapUIDPlus, imap.CapMove, imap.CapIdle, imap.CapLiteralPlus, imap.CapSpecialUse},
		[]imap.Cap{imap.CapStartTLS, "AUTH=PLAIN"})

	var logins int
	for _, cmd := range s.Commands() {
		if cmd.Name != "LOGIN" {
			continue
		}
		logins++
		if cmd.Line != cmd.Tag+" LOGIN [redacted]" {
			t.Errorf("LOGIN logged as %q", cmd.Line)
		}
	}
	if logins != 3 {
		t.Errorf("%d LOGIN commands logged, want 3", logins)
	}
}

func TestLoginLiteral(t *testing.T) {
	s := newServer(t, nil)
	const pw = "p\u00e4ss w\u00f6rd" // 8-bit: the client sends it as a literal
	s.AddUser("bob", pw)
	var once sync.Once
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		var f imaptest.Fault
		if c.Name == "LOGIN" {
			once.Do(func() { f.No = "[UNAVAILABLE] try again" })
		}
		return f
	})
	// The client announces a synchronizing literal and gets NO instead of
	// "+". (imapclient then closes the connection.)
	c := dialStartTLS(t, s, nil)
	err := c.Login("bob", pw).Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable)
	c = dialStartTLS(t, s, nil)
	if err := c.Login("bob", pw).Wait(); err != nil {
		t.Fatalf("second Login: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("Noop: %v", err)
	}
	for _, cmd := range s.Commands() {
		if strings.Contains(cmd.Line, "ss w") || strings.Contains(cmd.Line, "bob") {
			t.Errorf("logged line %q leaks credentials", cmd.Line)
		}
	}
}

func TestStartTLS(t *testing.T) {
	s := newServer(t, nil)
	c := dialStartTLS(t, s, nil)
	hasCaps(t, c.Caps(), []imap.Cap{"AUTH=PLAIN"}, []imap.Cap{imap.CapStartTLS})
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	// The fault hook sees commands inside TLS.
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "NOOP" {
			return imaptest.Fault{No: "inside TLS"}
		}
		return imaptest.Fault{}
	})
	wantIMAPError(t, c.Noop().Wait(), imap.StatusResponseTypeNo, "")
	names := commandNames(s)
	if i := slices.Index(names, "STARTTLS"); i < 0 || i > slices.Index(names, "LOGIN") {
		t.Errorf("commands %v: want STARTTLS before LOGIN", names)
	}

	// Certificate verification is on: a client that does not trust the
	// certificate fails.
	_, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
	if err == nil {
		t.Fatal("DialStartTLS with an untrusted certificate succeeded")
	}
	// CertPEM is the same certificate.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM()) {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	c2, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatalf("DialStartTLS trusting CertPEM: %v", err)
	}
	c2.Close()
	// The certificate is also valid for localhost.
	c3, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{ServerName: "localhost", RootCAs: pool}})
	if err != nil {
		t.Fatalf("DialStartTLS as localhost: %v", err)
	}
	c3.Close()
	// STARTTLS is offered once, before login.
	r := dialRaw(t, s)
	r.cmd("a1", "STARTTLS")
	tc := tls.Client(r.conn, s.ClientTLSConfig())
	r.conn, r.r = tc, bufio.NewReader(tc)
	if got := r.cmd("a2", "CAPABILITY"); strings.Contains(got[0], "STARTTLS") {
		t.Errorf("CAPABILITY after STARTTLS: %q", got)
	}
	if got := r.cmd("a3", "STARTTLS"); !strings.HasPrefix(got[len(got)-1], "a3 NO") {
		t.Errorf("second STARTTLS: %q", got)
	}
	r.cmd("a4", "LOGIN "+user+" "+password)
	if got := r.cmd("a5", "CAPABILITY"); strings.Contains(got[0], "STARTTLS") || !strings.Contains(got[0], "IDLE") {
		t.Errorf("CAPABILITY after login: %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser(user, password)
	c, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: s.ClientTLSConfig()})
	if err != nil {
		t.Fatalf("DialTLS: %v", err)
	}
	closeOnCleanup(t, c)
	hasCaps(t, c.Caps(), []imap.Cap{"AUTH=PLAIN"}, []imap.Cap{imap.CapStartTLS, imap.CapLoginDisabled})
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "NOOP" {
			return imaptest.Fault{Bad: "inside TLS"}
		}
		return imaptest.Fault{}
	})
	wantIMAPError(t, c.Noop().Wait(), imap.StatusResponseTypeBad, "")

	if _, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}}); err == nil {
		t.Fatal("DialTLS with an untrusted certificate succeeded")
	}
	cfg := s.ClientTLSConfig()
	cfg.ServerName = "mail.example.com"
	if _, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: cfg}); err == nil {
		t.Fatal("DialTLS with the wrong server name succeeded")
	}
}

func TestRequireTLSForAuth(t *testing.T) {
	s := newServer(t, &imaptest.Config{RequireTLSForAuth: true})
	c := dialInsecure(t, s, nil)
	hasCaps(t, c.Caps(), []imap.Cap{imap.CapStartTLS, imap.CapLoginDisabled}, []imap.Cap{"AUTH=PLAIN"})
	wantIMAPError(t, c.Login(user, password).Wait(), imap.StatusResponseTypeNo, imap.ResponseCodePrivacyRequired)
	if err := c.Authenticate(sasl.NewPlainClient("", user, password)); err == nil {
		t.Fatal("AUTHENTICATE PLAIN in cleartext succeeded")
	}

	c = dialStartTLS(t, s, nil)
	hasCaps(t, c.Caps(), []imap.Cap{"AUTH=PLAIN"}, []imap.Cap{imap.CapStartTLS, imap.CapLoginDisabled})
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login after STARTTLS: %v", err)
	}
}

func TestNoStartTLS(t *testing.T) {
	s := newServer(t, &imaptest.Config{NoStartTLS: true})
	c := dialInsecure(t, s, nil)
	hasCaps(t, c.Caps(), []imap.Cap{"AUTH=PLAIN"}, []imap.Cap{imap.CapStartTLS})
	if _, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: s.ClientTLSConfig()}); err == nil {
		t.Fatal("DialStartTLS succeeded on a server that does not offer STARTTLS")
	}
}

func TestIMAP4rev2(t *testing.T) {
	s := newServer(t, &imaptest.Config{IMAP4rev2: true})
	c := loggedIn(t, s, "", nil)
	hasCaps(t, c.Caps(), []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2}, nil)

	defer func() {
		if recover() == nil {
			t.Error("IMAP4rev2 with NoMove did not panic")
		}
	}()
	imaptest.NewUnstartedServer(&imaptest.Config{IMAP4rev2: true, NoMove: true})
}

func TestFetchByteExact(t *testing.T) {
	s := newServer(t, nil)
	date := time.Date(2024, 3, 5, 6, 7, 8, 0, time.FixedZone("", 3600))
	var uids []uint32
	for i, raw := range oddMessages {
		if i == 0 {
			uids = append(uids, s.AppendMessage(user, "INBOX", raw, nil, date))
		} else {
			uids = append(uids, s.Append(user, "INBOX", raw))
		}
	}
	if !slices.Equal(s.UIDs(user, "INBOX"), uids) {
		t.Fatalf("UIDs = %v, want %v", s.UIDs(user, "INBOX"), uids)
	}

	c := loggedIn(t, s, "INBOX", nil)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, RFC822Size: true, InternalDate: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH: %v", err)
	}
	if len(msgs) != len(oddMessages) {
		t.Fatalf("fetched %d messages, want %d", len(msgs), len(oddMessages))
	}
	for i, m := range msgs {
		raw := oddMessages[i]
		if uint32(m.UID) != uids[i] {
			t.Errorf("message %d: UID %d, want %d", i, m.UID, uids[i])
		}
		if got := m.FindBodySection(section); !bytes.Equal(got, raw) {
			t.Errorf("message %d: BODY[] = %q, want %q", i, got, raw)
		}
		if m.RFC822Size != int64(len(raw)) {
			t.Errorf("message %d: RFC822.SIZE = %d, want %d", i, m.RFC822Size, len(raw))
		}
		if m.InternalDate.IsZero() {
			t.Errorf("message %d: no INTERNALDATE", i)
		}
	}
	if !msgs[0].InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE = %v, want %v", msgs[0].InternalDate, date)
	}
	// BODY.PEEK[] does not set \Seen.
	for i, flags := range s.Flags(user, "INBOX") {
		if len(flags) != 0 {
			t.Errorf("message %d has flags %v after BODY.PEEK[]", i, flags)
		}
	}
	// BODY[] does.
	if _, err := c.Fetch(imap.UIDSetNum(imap.UID(uids[1])), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{}},
	}).Collect(); err != nil {
		t.Fatalf("UID FETCH BODY[]: %v", err)
	}
	if got := s.Flags(user, "INBOX")[1]; !slices.Equal(got, []string{`\Seen`}) {
		t.Errorf("flags after BODY[] = %v, want [\\Seen]", got)
	}
	if !reflect.DeepEqual(s.Messages(user, "INBOX"), oddMessages) {
		t.Error("Messages differs from what was appended")
	}
}

func TestPartialFetch(t *testing.T) {
	s := newServer(t, nil)
	for _, raw := range oddMessages {
		s.Append(user, "INBOX", raw)
	}
	c := loggedIn(t, s, "INBOX", nil)
	for i, raw := range oddMessages {
		uid := imap.UID(i + 1)
		for _, p := range []imap.SectionPartial{{Offset: 0, Size: 10}, {Offset: 5, Size: 7}, {Offset: 20, Size: 1000}, {Offset: 1000, Size: 10}} {
			section := &imap.FetchItemBodySection{Peek: true, Partial: &p}
			msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("UID FETCH %d BODY.PEEK[]<%d.%d>: %d messages, %v", uid, p.Offset, p.Size, len(msgs), err)
			}
			start, end := min(p.Offset, int64(len(raw))), min(p.Offset+p.Size, int64(len(raw)))
			if got := msgs[0].FindBodySection(section); !bytes.Equal(got, raw[start:end]) {
				t.Errorf("message %d <%d.%d> = %q, want %q", i, p.Offset, p.Size, got, raw[start:end])
			}
		}
	}
}

func TestClientAppend(t *testing.T) {
	s := newServer(t, nil)
	c := loggedIn(t, s, "", nil)
	big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 4096) // 256 KiB
	big = append([]byte("Subject: big\r\n\r\n"), big...)
	appendMsg := func(raw []byte) (*imap.AppendData, error) {
		cmd := c.Append("Sent", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
		if _, err := cmd.Write(raw); err != nil {
			t.Fatalf("APPEND write: %v", err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("APPEND close: %v", err)
		}
		return cmd.Wait()
	}
	if _, err := appendMsg(big); err == nil {
		t.Fatal("APPEND to a missing folder succeeded")
	}
	s.CreateFolder(user, "Sent")
	for _, raw := range [][]byte{oddMessages[1], oddMessages[3], big} {
		data, err := appendMsg(raw)
		if err != nil {
			t.Fatalf("APPEND: %v", err)
		}
		if data.UID == 0 || data.UIDValidity != s.UIDValidity(user, "Sent") {
			t.Errorf("APPENDUID = %d %d, want a UID and UIDVALIDITY %d", data.UIDValidity, data.UID, s.UIDValidity(user, "Sent"))
		}
	}
	got := s.Messages(user, "Sent")
	if len(got) != 3 || !bytes.Equal(got[0], oddMessages[1]) || !bytes.Equal(got[1], oddMessages[3]) || !bytes.Equal(got[2], big) {
		t.Errorf("Sent holds %d messages, not the appended ones", len(got))
	}
	for _, flags := range s.Flags(user, "Sent") {
		if !slices.Equal(flags, []string{`\Seen`}) {
			t.Errorf("flags %v, want [\\Seen]", flags)
		}
	}
}

func TestUIDExpunge(t *testing.T) {
	s := newServer(t, nil)
	for i := range 4 {
		s.Append(user, "INBOX", message(fmt.Sprint(i), "x"))
	}
	c := loggedIn(t, s, "INBOX", nil)
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := c.Store(imap.UIDSetNum(1, 2, 3), store, nil).Close(); err != nil {
		t.Fatalf("UID STORE: %v", err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(2)).Close(); err != nil {
		t.Fatalf("UID EXPUNGE: %v", err)
	}
	if got := s.UIDs(user, "INBOX"); !slices.Equal(got, []uint32{1, 3, 4}) {
		t.Errorf("UIDs after UID EXPUNGE 2 = %v, want [1 3 4]", got)
	}
	flags := s.Flags(user, "INBOX")
	if !slices.Equal(flags[0], []string{`\Deleted`}) || !slices.Equal(flags[1], []string{`\Deleted`}) || len(flags[2]) != 0 {
		t.Errorf("flags = %v", flags)
	}
	if got := allUIDs(t, c); !slices.Equal(got, []imap.UID{1, 3, 4}) {
		t.Errorf("client sees UIDs %v", got)
	}
	names := commandNames(s)
	for _, want := range []string{"UID STORE", "UID EXPUNGE", "UID FETCH"} {
		if !slices.Contains(names, want) {
			t.Errorf("commands %v lack %s", names, want)
		}
	}
	if slices.Contains(names, "EXPUNGE") {
		t.Errorf("commands %v contain a plain EXPUNGE", names)
	}
}

func TestMove(t *testing.T) {
	s := newServer(t, nil)
	for i := range 3 {
		s.Append(user, "INBOX", message(fmt.Sprint(i), "x"))
	}
	s.CreateFolder(user, "Archive", `\Archive`)
	c := loggedIn(t, s, "INBOX", nil)
	data, err := c.Move(imap.UIDSetNum(2), "Archive").Wait()
	if err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
	if data.UIDValidity != s.UIDValidity(user, "Archive") || !slices.Equal(data.DestUIDs.(imap.UIDSet), imap.UIDSetNum(1)) {
		t.Errorf("COPYUID = %d %v %v", data.UIDValidity, data.SourceUIDs, data.DestUIDs)
	}
	if got := s.UIDs(user, "INBOX"); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("INBOX UIDs = %v, want [1 3]", got)
	}
	if got := s.Messages(user, "Archive"); len(got) != 1 || !bytes.Equal(got[0], message("1", "x")) {
		t.Errorf("Archive = %q", got)
	}
	if names := commandNames(s); !slices.Contains(names, "UID MOVE") || slices.Contains(names, "EXPUNGE") {
		t.Errorf("commands %v: want UID MOVE and no EXPUNGE", names)
	}
	// Special-use attributes are announced.
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	found := false
	for _, l := range list {
		if l.Mailbox == "Archive" && slices.Contains(l.Attrs, imap.MailboxAttrArchive) {
			found = true
		}
	}
	if !found {
		t.Errorf("LIST %v: no Archive with \\Archive", list)
	}
}

func TestFoldersAndStatus(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message("a", "x"))
	s.Append(user, "INBOX", message("b", "y"))
	c := loggedIn(t, s, "", nil)
	if err := c.Create("Work/Reports", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"INBOX", "Work/Reports"}) {
		t.Errorf("LIST = %v", names)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if *st.NumMessages != 2 || st.UIDNext != 3 || st.UIDValidity != s.UIDValidity(user, "INBOX") || *st.NumUnseen != 2 {
		t.Errorf("STATUS = %d messages, UIDNEXT %d, UIDVALIDITY %d, %d unseen", *st.NumMessages, st.UIDNext, st.UIDValidity, *st.NumUnseen)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE: %v", err)
	}
	if sel.NumMessages != 2 || sel.UIDValidity != st.UIDValidity {
		t.Errorf("EXAMINE = %+v", sel)
	}
	if _, err := c.Select("Nonexistent", nil).Wait(); err == nil {
		t.Error("SELECT of a missing folder succeeded")
	}
}

func TestResetUIDValidity(t *testing.T) {
	s := newServer(t, nil)
	date := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	s.AppendMessage(user, "INBOX", message("a", "x"), []string{`\Seen`, "$Label1"}, date)
	s.Append(user, "INBOX", message("b", "y"))
	before := s.UIDValidity(user, "INBOX")
	flags, msgs := s.Flags(user, "INBOX"), s.Messages(user, "INBOX")

	s.ResetUIDValidity(user, "INBOX")
	if after := s.UIDValidity(user, "INBOX"); after == before {
		t.Fatalf("UIDVALIDITY stayed %d", after)
	}
	if !reflect.DeepEqual(s.Messages(user, "INBOX"), msgs) || !reflect.DeepEqual(s.Flags(user, "INBOX"), flags) {
		t.Errorf("messages or flags changed: %v -> %v", flags, s.Flags(user, "INBOX"))
	}
	if !slices.Equal(flags[0], []string{"$label1", `\Seen`}) {
		t.Errorf("flags = %v", flags[0])
	}
	c := loggedIn(t, s, "", nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity != s.UIDValidity(user, "INBOX") || sel.NumMessages != 2 {
		t.Errorf("SELECT = UIDVALIDITY %d, %d messages", sel.UIDValidity, sel.NumMessages)
	}
	m, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{InternalDate: true}).Collect()
	if err != nil || len(m) != 1 || !m[0].InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE after reset: %v, %v", m, err)
	}
}

func TestSetMessages(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message("old", "x"))
	v := s.UIDValidity(user, "INBOX")
	s.SetMessages(user, "INBOX", [][]byte{message("new1", "a"), message("new2", "b")})
	if got := s.Messages(user, "INBOX"); len(got) != 2 || !bytes.Equal(got[1], message("new2", "b")) {
		t.Errorf("Messages = %q", got)
	}
	if got := s.UIDs(user, "INBOX"); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("UIDs = %v, want [2 3]", got)
	}
	if s.UIDValidity(user, "INBOX") != v {
		t.Error("SetMessages changed UIDVALIDITY")
	}
	s.SetMessages(user, "Other", nil)
	if got := s.Messages(user, "Other"); len(got) != 0 {
		t.Errorf("new folder holds %d messages", len(got))
	}
}

func TestIdle(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message("first", "x"))
	exists := make(chan uint32, 10)
	c := loggedIn(t, s, "INBOX", &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	})
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	s.Append(user, "INBOX", message("second", "y"))
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("EXISTS %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("IDLE close: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after IDLE: %v", err)
	}
	names := commandNames(s)
	if !slices.Contains(names, "IDLE") || slices.Contains(names, "DONE") {
		t.Errorf("commands %v: want IDLE, and DONE not logged as a command", names)
	}
}

func TestFaultDrop(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		return imaptest.Fault{Drop: c.Name == "UID STORE"}
	}})
	s.Append(user, "INBOX", message("a", "x"))
	c := loggedIn(t, s, "INBOX", nil)
	err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err == nil {
		t.Fatal("UID STORE succeeded on a dropped connection")
	}
	if got := s.Flags(user, "INBOX")[0]; len(got) != 0 {
		t.Errorf("the dropped UID STORE was executed: flags %v", got)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open")
	}
	if names := commandNames(s); names[len(names)-1] != "UID STORE" {
		t.Errorf("last command %q, want UID STORE", names[len(names)-1])
	}
}

func TestFaultDropAtFetch(t *testing.T) {
	s := newServer(t, nil)
	s.Append(user, "INBOX", message("a", "x"))
	c := loggedIn(t, s, "INBOX", nil)
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		return imaptest.Fault{Drop: c.Name == "UID FETCH"}
	})
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err == nil {
		t.Fatalf("UID FETCH on a dropped connection returned %d messages and no error", len(msgs))
	}
}

func TestFaultDropAfterBytes(t *testing.T) {
	s := newServer(t, nil)
	raw := append(message("big", ""), bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789\r\n"), 5000)...)
	s.Append(user, "INBOX", raw)
	c := loggedIn(t, s, "INBOX", nil)
	const cut = 1000
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID FETCH" {
			return imaptest.Fault{DropAfterBytes: cut}
		}
		return imaptest.Fault{}
	})
	cmd := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	msg := cmd.Next()
	if msg == nil {
		t.Fatalf("no message: %v", cmd.Close())
	}
	var got []byte
	for item := msg.Next(); item != nil; item = msg.Next() {
		if b, ok := item.(imapclient.FetchItemDataBodySection); ok {
			if b.Literal.Size() != int64(len(raw)) {
				t.Errorf("literal announced %d bytes, want %d", b.Literal.Size(), len(raw))
			}
			// imapclient's literal reader ends with io.EOF, not an
			// error, when the connection ends early: only the length
			// shows the cut.
			got, _ = io.ReadAll(b.Literal)
			break
		}
	}
	if len(got) == 0 || len(got) >= cut || !bytes.HasPrefix(raw, got) {
		t.Errorf("got %d bytes of the literal before the cut, want a prefix of fewer than %d", len(got), cut)
	}
	// (FetchCommand.Close would race with imapclient's decoder after a
	// truncated literal.)
	c.Close()
	// The server's session ends, although it was in the middle of writing.
	s.CloseClientConnections()
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestFaultNo(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "UID EXPUNGE" {
			return imaptest.Fault{No: "[UNAVAILABLE] try later"}
		}
		return imaptest.Fault{}
	}})
	s.AppendMessage(user, "INBOX", message("a", "x"), []string{`\Deleted`}, time.Time{})
	c := loggedIn(t, s, "INBOX", nil)
	err := c.UIDExpunge(imap.UIDSetNum(1)).Close()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable)
	if got := s.UIDs(user, "INBOX"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("UIDs %v: the refused UID EXPUNGE was executed", got)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after the refused command: %v", err)
	}
}

func TestFaultBad(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "SELECT" {
			return imaptest.Fault{Bad: "no\r\nway"}
		}
		return imaptest.Fault{}
	}})
	c := loggedIn(t, s, "", nil)
	_, err := c.Select("INBOX", nil).Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeBad, "")
	if !strings.Contains(err.Error(), "no  way") {
		t.Errorf("error %q: CR LF not replaced", err)
	}
}

func TestFaultStall(t *testing.T) {
	const stall = 150 * time.Millisecond
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "NOOP" {
			return imaptest.Fault{Stall: stall}
		}
		return imaptest.Fault{}
	}})
	c := loggedIn(t, s, "", nil)
	start := time.Now()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	if d := time.Since(start); d < stall {
		t.Errorf("NOOP answered after %v, want at least %v", d, stall)
	}
}

func TestFaultStallEndsAtClose(t *testing.T) {
	s := imaptest.NewServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		return imaptest.Fault{Stall: time.Hour}
	}})
	c := dialInsecure(t, s, nil) // the greeting stalls too: dial without waiting
	_ = c
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a stalled connection")
	}
}

func TestFaultReply(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Name == "NOOP" {
			return imaptest.Fault{Reply: "* 3 XUNKNOWN garbage\r\n"}
		}
		return imaptest.Fault{}
	}})
	c := loggedIn(t, s, "INBOX", nil)
	if err := c.Noop().Wait(); err == nil {
		t.Fatal("NOOP answered by an unknown response succeeded")
	}

	// The raw bytes reach the client unchanged.
	const huge = "* 1 FETCH (UID 1 BODY[] {1000000000000}\r\n"
	s.SetFault(func(c imaptest.Command) imaptest.Fault {
		if c.Name == "NOOP" {
			return imaptest.Fault{Reply: huge}
		}
		return imaptest.Fault{}
	})
	r := dialRaw(t, s)
	r.send("a1 NOOP\r\n")
	if got := r.line(); got+"\r\n" != huge {
		t.Errorf("got %q, want %q", got, huge)
	}
}

func TestFaultGreeting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault imaptest.Fault
	}{
		{"drop", imaptest.Fault{Drop: true}},
		{"bye", imaptest.Fault{No: "too many connections"}},
		{"cut", imaptest.Fault{DropAfterBytes: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
				if c.Seq == 0 {
					return tc.fault
				}
				return imaptest.Fault{}
			}})
			c, err := imapclient.DialInsecure(s.Addr, nil)
			if err == nil {
				err = c.Noop().Wait()
				c.Close()
			}
			if err == nil {
				t.Fatal("the greeting fault went unnoticed")
			}
		})
	}
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Seq == 0 {
			return imaptest.Fault{Reply: "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hello there\r\n"}
		}
		return imaptest.Fault{}
	}})
	r := dialRawNoGreeting(t, s)
	if got := r.line(); got != "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS] hello there" && got != "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hello there" {
		t.Errorf("greeting %q", got)
	}
	r.send("a1 NOOP\r\n")
	if got := r.line(); !strings.HasPrefix(got, "a1 OK") {
		t.Errorf("after a replaced greeting: %q", got)
	}
}

func TestDegradedServer(t *testing.T) {
	s := newServer(t, &imaptest.Config{NoMove: true, NoUIDPlus: true, NoIdle: true})
	s.Append(user, "INBOX", message("a", "x"))
	s.CreateFolder(user, "Archive")
	c := loggedIn(t, s, "INBOX", nil)
	hasCaps(t, c.Caps(), []imap.Cap{imap.CapIMAP4rev1, imap.CapNamespace}, []imap.Cap{imap.CapMove, imap.CapUIDPlus, imap.CapIdle})

	wantIMAPError(t, c.UIDExpunge(imap.UIDSetNum(1)).Close(), imap.StatusResponseTypeBad, "")
	if _, err := c.Idle(); err == nil {
		t.Error("IDLE succeeded")
	}
	cmd := c.Append("INBOX", 10, nil)
	cmd.Write([]byte("Subject: x"))
	cmd.Close()
	if data, err := cmd.Wait(); err != nil || data.UID != 0 {
		t.Errorf("APPEND = %+v, %v; want success without APPENDUID", data, err)
	}
	copyData, err := c.Copy(imap.UIDSetNum(1), "Archive").Wait()
	if err != nil || copyData.UIDValidity != 0 {
		t.Errorf("COPY = %+v, %v; want success without COPYUID", copyData, err)
	}

	r := dialRaw(t, s)
	r.cmd("a1", "LOGIN "+user+" "+password)
	r.cmd("a2", "SELECT INBOX")
	for _, line := range []string{"UID MOVE 1 Archive", "MOVE 1 Archive", "UID EXPUNGE 1", "IDLE"} {
		if got := r.cmd("b", line); !strings.HasPrefix(got[len(got)-1], "b BAD") {
			t.Errorf("%s: %q, want BAD", line, got)
		}
	}
	if got := s.UIDs(user, "INBOX"); len(got) != 2 {
		t.Errorf("INBOX UIDs %v", got)
	}
}

type xoauth2Client struct{ user, token string }

func (a xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }

// oauthBearerClient answers the error challenge with ^A (RFC 7628 section
// 3.2.3), which go-sasl's client does not.
type oauthBearerClient struct{ sasl.Client }

func (o oauthBearerClient) Next([]byte) ([]byte, error) { return []byte{1}, nil }

func TestOAuth(t *testing.T) {
	s := newServer(t, &imaptest.Config{Tokens: map[string]string{"tok-alice": user}})
	s.AddUser("bob", "pw")
	s.AddToken("tok-bob", "bob")

	ob := func(name, token string) sasl.Client {
		return oauthBearerClient{sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: name, Token: token, Host: "127.0.0.1"})}
	}
	for _, tc := range []struct {
		name string
		sasl sasl.Client
		ok   bool
	}{
		{"xoauth2", xoauth2Client{user, "tok-alice"}, true},
		{"xoauth2 bad token", xoauth2Client{user, "tok-wrong"}, false},
		{"xoauth2 other user's token", xoauth2Client{user, "tok-bob"}, false},
		{"oauthbearer", ob(user, "tok-alice"), true},
		{"oauthbearer no user", ob("", "tok-bob"), true},
		{"oauthbearer bad token", ob(user, "tok-wrong"), false},
		{"oauthbearer other user's token", ob("bob", "tok-alice"), false},
		{"plain", sasl.NewPlainClient("", user, password), true},
		{"plain bad password", sasl.NewPlainClient("", user, "wrong"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialStartTLS(t, s, nil)
			hasCaps(t, c.Caps(), []imap.Cap{"AUTH=PLAIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"}, nil)
			err := c.Authenticate(tc.sasl)
			if tc.ok {
				if err != nil {
					t.Fatalf("AUTHENTICATE: %v", err)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Fatalf("SELECT after AUTHENTICATE: %v", err)
				}
				return
			}
			wantIMAPError(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed)
			// The exchange ended cleanly: the connection is usable.
			if err := c.Noop().Wait(); err != nil {
				t.Fatalf("NOOP after a failed AUTHENTICATE: %v", err)
			}
		})
	}
	for _, cmd := range s.Commands() {
		if cmd.Name == "AUTHENTICATE" && !strings.HasSuffix(cmd.Line, " [redacted]") {
			t.Errorf("AUTHENTICATE logged as %q", cmd.Line)
		}
		if strings.Contains(cmd.Line, "tok-") {
			t.Errorf("logged line %q leaks a token", cmd.Line)
		}
	}
}

func TestAuthenticateWithoutInitialResponse(t *testing.T) {
	s := newServer(t, &imaptest.Config{Tokens: map[string]string{"tok": user}})
	r := dialRaw(t, s)
	r.send("a1 AUTHENTICATE PLAIN\r\n")
	if got := r.line(); got != "+ " {
		t.Fatalf("got %q, want the empty challenge \"+ \"", got)
	}
	r.send(base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "\r\n")
	if got := r.line(); !strings.HasPrefix(got, "a1 OK") {
		t.Fatalf("got %q, want a1 OK", got)
	}
	r = dialRaw(t, s)
	r.send("a1 AUTHENTICATE XOAUTH2\r\n")
	if got := r.line(); got != "+ " {
		t.Fatalf("got %q, want \"+ \"", got)
	}
	r.send("*\r\n") // cancel
	if got := r.line(); !strings.HasPrefix(got, "a1 BAD") {
		t.Fatalf("got %q, want a1 BAD", got)
	}
	if got := r.cmd("a2", "NOOP"); !strings.HasPrefix(got[len(got)-1], "a2 OK") {
		t.Fatalf("NOOP after cancelled AUTHENTICATE: %q", got)
	}
	for _, cmd := range s.Commands() {
		if cmd.Name == "" || strings.Contains(cmd.Line, "*") {
			t.Errorf("SASL response logged as a command: %+v", cmd)
		}
	}
}

func TestPipelining(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Tag == "a2" {
			return imaptest.Fault{No: "refused"}
		}
		return imaptest.Fault{}
	}})
	r := dialRaw(t, s)
	r.send("a1 NOOP\r\na2 NOOP\r\na3 LOGIN " + user + " {9+}\r\n" + password + "\r\na4 NOOP\r\n")
	var got []string
	for len(got) < 4 {
		line := r.line()
		if !strings.HasPrefix(line, "*") {
			got = append(got, line[:5])
		}
	}
	if want := []string{"a1 OK", "a2 NO", "a3 OK", "a4 OK"}; !slices.Equal(got, want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	var seqs []int
	for _, c := range s.Commands() {
		seqs = append(seqs, c.Seq)
	}
	if !slices.Equal(seqs, []int{1, 2, 3, 4}) {
		t.Errorf("logged Seq %v", seqs)
	}
}

func TestSyncLiteral(t *testing.T) {
	s := newServer(t, &imaptest.Config{Fault: func(c imaptest.Command) imaptest.Fault {
		if c.Tag == "a1" {
			return imaptest.Fault{No: "not now"}
		}
		return imaptest.Fault{}
	}})
	r := dialRaw(t, s)
	// Refused by the fault: the client gets NO instead of "+" and sends no
	// literal.
	r.send("a1 LOGIN {5}\r\n")
	if got := r.line(); got != "a1 NO not now" {
		t.Fatalf("got %q", got)
	}
	// Passed on: "+" for each literal.
	r.send("a2 LOGIN {5}\r\n")
	if got := r.line(); !strings.HasPrefix(got, "+") {
		t.Fatalf("got %q, want +", got)
	}
	r.send(user + " {9}\r\n")
	if got := r.line(); !strings.HasPrefix(got, "+") {
		t.Fatalf("got %q, want +", got)
	}
	r.send(password + "\r\n")
	if got := r.line(); !strings.HasPrefix(got, "a2 OK") {
		t.Fatalf("got %q, want a2 OK", got)
	}
	// Refused by the server before the literal: the next line is a command.
	r.send("a3 APPEND INBOX {200000000}\r\n")
	if got := r.line(); !strings.HasPrefix(got, "a3 NO [TOOBIG]") {
		t.Fatalf("got %q, want a3 NO [TOOBIG]", got)
	}
	if got := r.cmd("a4", "NOOP"); !strings.HasPrefix(got[len(got)-1], "a4 OK") {
		t.Fatalf("got %q", got)
	}
	var tags []string
	for _, c := range s.Commands() {
		tags = append(tags, c.Tag)
	}
	if !slices.Equal(tags, []string{"a1", "a2", "a3", "a4"}) {
		t.Errorf("logged tags %v", tags)
	}
}

func TestStartTLSInjection(t *testing.T) {
	s := newServer(t, nil)
	r := dialRaw(t, s)
	r.send("a1 STARTTLS\r\na2 CAPABILITY\r\n")
	if got := r.line(); !strings.HasPrefix(got, "a1 OK") {
		t.Fatalf("got %q, want a1 OK", got)
	}
	tc := tls.Client(r.conn, s.ClientTLSConfig())
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded although plaintext followed STARTTLS")
	}
}

func TestCloseClientConnections(t *testing.T) {
	s := newServer(t, nil)
	c := loggedIn(t, s, "INBOX", nil)
	s.CloseClientConnections()
	if err := c.Noop().Wait(); err == nil {
		t.Fatal("NOOP succeeded on a closed connection")
	}
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	loggedIn(t, s, "INBOX", nil) // the server still listens
}

func TestServeConn(t *testing.T) {
	s := imaptest.NewUnstartedServer(nil)
	defer s.Close()
	s.AddUser(user, password)
	cli, srv := net.Pipe()
	s.ServeConn(srv)
	c := imapclient.New(cli, nil)
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if cmds := s.Commands(); len(cmds) == 0 || cmds[len(cmds)-1].Conn != 1 {
		t.Errorf("commands %+v", cmds)
	}
}

func TestUnstartedServerPanicsOnMisuse(t *testing.T) {
	s := imaptest.NewUnstartedServer(nil)
	defer s.Close()
	defer func() {
		if recover() == nil {
			t.Error("Messages of an unknown user did not panic")
		}
	}()
	s.Messages("nobody", "INBOX")
}

func TestDebugWriter(t *testing.T) {
	var buf syncBuffer
	s := newServer(t, &imaptest.Config{DebugWriter: &buf})
	s.Append(user, "INBOX", message("a", "secret body"))
	c := loggedIn(t, s, "INBOX", nil)
	if _, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	out := buf.String()
	for _, want := range []string{"S1: * OK [CAPABILITY", "C1: ", " LOGIN [redacted]", "UID FETCH", "BODY[] {"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{password, "secret body"} {
		if strings.Contains(out, leak) {
			t.Errorf("transcript contains %q:\n%s", leak, out)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawClient speaks IMAP by hand, for what imapclient cannot be made to
// send.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRawNoGreeting(t *testing.T, s *imaptest.Server) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A bound on a test that would otherwise hang, not a wait.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func dialRaw(t *testing.T, s *imaptest.Server) *rawClient {
	t.Helper()
	r := dialRawNoGreeting(t, s)
	if g := r.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return r
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawClient) line() string {
	r.t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends one command and returns the lines up to its tagged answer.
func (r *rawClient) cmd(tag, line string) []string {
	r.t.Helper()
	r.send(tag + " " + line + "\r\n")
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	s := newServer(t, nil)
	r := dialRaw(t, s)
	r.cmd("a1", "LOGIN "+user+" "+password)
	if got := r.cmd("a2", `ID ("name" "test")`); !strings.HasPrefix(got[len(got)-1], "a2 BAD") {
		t.Errorf("ID after login: %q, want BAD", got)
	}
	r = dialRaw(t, s)
	r.send("a1 ID NIL\r\n")
	if got := r.line() + " / " + r.line(); !strings.HasPrefix(got, "a1 BAD") || !strings.Contains(got, "/ * BYE") {
		t.Errorf("ID before login: %q, want BAD then BYE", got)
	}
	if _, err := r.r.ReadByte(); err == nil {
		t.Error("the connection stayed open after BYE")
	}
}
