package rawclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// corpus returns messages that exercise the framing: lines starting with
// dots (POP3 dot-stuffing), a line far longer than the reader's buffer,
// a line that is a lone dot, and a message of several hundred KiB.
func corpus() [][]byte {
	long := "X-Long: " + strings.Repeat("y", 3*readBuffer) + "\r\n"
	var big bytes.Buffer
	big.WriteString("Subject: big\r\n\r\n")
	for big.Len() < 300<<10 {
		big.WriteString("line of a big message, with enough words to look like text\r\n")
	}
	msgs := [][]byte{
		[]byte("Subject: one\r\n\r\nHello\r\n"),
		[]byte("Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...\r\nend\r\n"),
		[]byte("Subject: long\r\n" + long + "\r\nbody\r\n"),
		big.Bytes(),
		[]byte("Subject: {5}\r\n\r\nA subject that looks like a literal\r\n"),
	}
	for i := range 20 {
		msgs = append(msgs, []byte("Subject: filler "+strings.Repeat("x", i)+"\r\n\r\nbody\r\n"))
	}
	return msgs
}

func total(msgs [][]byte) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m))
	}
	return n
}

func TestFetchIMAP(t *testing.T) {
	srv := imaptest.NewTLSServer(t, nil)
	srv.AddUser("alice", "secret")
	msgs := corpus()
	for _, m := range msgs {
		srv.Append("alice", "INBOX", m)
	}
	cfg := Config{Addr: srv.Addr, TLSConfig: srv.ClientTLSConfig(), Username: "alice", Password: "secret"}
	res, err := FetchIMAP(t.Context(), cfg, len(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != len(msgs) || res.Bytes != total(msgs) {
		t.Fatalf("got %+v, want %d messages and %d octets", res, len(msgs), total(msgs))
	}
	// One FETCH for everything, and nothing that changes the mailbox.
	var fetches []string
	for _, c := range srv.Commands() {
		switch c.Name {
		case "UID FETCH":
			fetches = append(fetches, c.Line)
		case "LOGIN", "SELECT", "LOGOUT":
		default:
			t.Errorf("unexpected command %q", c.Line)
		}
	}
	if len(fetches) != 1 || !strings.HasSuffix(fetches[0], "UID FETCH 1:* BODY.PEEK[]") {
		t.Errorf("fetch commands %q, want one UID FETCH 1:* BODY.PEEK[]", fetches)
	}
	for i, fl := range srv.Flags("alice", "INBOX") {
		for _, f := range fl {
			if f == `\Seen` {
				t.Errorf("message %d was marked \\Seen", i+1)
			}
		}
	}

	list, err := ListIMAP(t.Context(), cfg, len(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if list.Messages != len(msgs) || list.Bytes != total(msgs) {
		t.Fatalf("list got %+v, want %d messages and %d octets", list, len(msgs), total(msgs))
	}

	for after, want := range map[uint32]int{uint32(len(msgs)): 0, uint32(len(msgs) - 2): 2, 0: len(msgs)} {
		got, err := ListIMAPAfter(t.Context(), cfg, after, want)
		if err != nil || got.Messages != want {
			t.Errorf("ListIMAPAfter(%d): %+v, %v; want %d new", after, got, err, want)
		}
	}
	if _, err := ListIMAPAfter(t.Context(), cfg, uint32(len(msgs)), 1); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Errorf("ListIMAPAfter with a wrong count: %v, want ErrProtocol", err)
	}

	if _, err := FetchIMAP(t.Context(), cfg, len(msgs)+1); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Errorf("wrong count: got %v, want ErrProtocol", err)
	}
}

func TestFetchPOP3(t *testing.T) {
	srv := poptest.NewTLSServer(t, nil)
	srv.AddUser("alice", "secret")
	msgs := corpus()
	for _, m := range msgs {
		srv.AddMessage("alice", m)
	}
	cfg := Config{Addr: srv.Addr, TLSConfig: srv.ClientTLSConfig(), Username: "alice", Password: "secret"}
	res, err := FetchPOP3(t.Context(), cfg, len(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != len(msgs) || res.Bytes != total(msgs) {
		t.Fatalf("got %+v, want %d messages and %d octets", res, len(msgs), total(msgs))
	}
	if got := srv.Messages("alice"); len(got) != len(msgs) {
		t.Errorf("%d messages left on the server, want %d", len(got), len(msgs))
	}
	var retrs int
	for _, c := range srv.Commands() {
		if c.Name == "RETR" {
			retrs++
		}
	}
	if retrs != len(msgs) {
		t.Errorf("%d RETR commands, want %d", retrs, len(msgs))
	}
	if _, err := FetchPOP3(t.Context(), cfg, len(msgs)-1); !errors.Is(err, mailaccess.ErrProtocol) {
		t.Errorf("wrong count: got %v, want ErrProtocol", err)
	}
}

func TestAuthAndArguments(t *testing.T) {
	isrv := imaptest.NewTLSServer(t, nil)
	isrv.AddUser("alice", "secret")
	psrv := poptest.NewTLSServer(t, nil)
	psrv.AddUser("alice", "secret")
	icfg := Config{Addr: isrv.Addr, TLSConfig: isrv.ClientTLSConfig(), Username: "alice", Password: "wrong-pass"}
	pcfg := Config{Addr: psrv.Addr, TLSConfig: psrv.ClientTLSConfig(), Username: "alice", Password: "wrong-pass"}
	for name, f := range map[string]func() error{
		"imap": func() error { _, err := FetchIMAP(t.Context(), icfg, -1); return err },
		"pop3": func() error { _, err := FetchPOP3(t.Context(), pcfg, -1); return err },
	} {
		err := f()
		if !errors.Is(err, mailaccess.ErrAuth) {
			t.Errorf("%s with a wrong password: got %v, want ErrAuth", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "wrong-pass") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}

	icfg.Password = "a\r\nA2 DELETE INBOX"
	if _, err := FetchIMAP(t.Context(), icfg, -1); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Errorf("CRLF in the password: got %v, want ErrInvalidArgument", err)
	}
	icfg.Password = "secret"
	icfg.TLSConfig = nil
	if _, err := FetchIMAP(t.Context(), icfg, -1); !errors.Is(err, mailaccess.ErrInvalidArgument) {
		t.Errorf("no TLS configuration: got %v, want ErrInvalidArgument", err)
	}
	// The certificate is verified: a client that trusts another CA fails.
	pcfg.Password = "secret"
	pcfg.TLSConfig = isrv.ClientTLSConfig()
	if _, err := FetchPOP3(t.Context(), pcfg, -1); !errors.Is(err, mailaccess.ErrTLS) {
		t.Errorf("untrusted certificate: got %v, want ErrTLS", err)
	}
	for _, cmd := range isrv.Commands() {
		if cmd.Name == "DELETE" {
			t.Errorf("an injected command reached the server: %q", cmd.Line)
		}
	}
}

func TestCanceled(t *testing.T) {
	srv := poptest.NewTLSServer(t, nil)
	srv.AddUser("alice", "secret")
	srv.AddMessage("alice", []byte("Subject: x\r\n\r\ny\r\n"))
	stalled := make(chan struct{}, 1)
	srv.SetFault(func(c poptest.Command) poptest.Fault {
		if c.Name == "STAT" {
			stalled <- struct{}{}
			return poptest.Fault{Stall: 10 * time.Second}
		}
		return poptest.Fault{}
	})
	ctx, cancel := context.WithCancel(t.Context())
	cfg := Config{Addr: srv.Addr, TLSConfig: srv.ClientTLSConfig(), Username: "alice", Password: "secret"}
	errc := make(chan error, 1)
	go func() { _, err := FetchPOP3(ctx, cfg, 1); errc <- err }()
	select {
	case <-stalled:
	case err := <-errc:
		t.Fatalf("returned before STAT stalled: %v", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, mailaccess.ErrConnection) {
		t.Errorf("canceled: got %v, want ErrConnection", err)
	}
}

func TestLiteralSize(t *testing.T) {
	for line, want := range map[string]int64{
		"* 1 FETCH (UID 1 BODY[] {4000}\r\n": 4000,
		"* 1 FETCH (UID 1 BODY[] {12+}\r\n":  12,
		"* 1 FETCH (UID 1 BODY[] {}\r\n":     -1,
		"* 1 FETCH (UID 1 BODY[] {x}\r\n":    -1,
		"* 1 FETCH (UID 1 FLAGS ())\r\n":     -1,
		"{0}\r\n":                            0,
	} {
		if got := literalSize([]byte(line)); got != want {
			t.Errorf("literalSize(%q) = %d, want %d", line, got, want)
		}
	}
	if n, ok := sizeOf([]byte("* 3 FETCH (UID 9 RFC822.SIZE 1234)\r\n")); !ok || n != 1234 {
		t.Errorf("sizeOf = %d, %v", n, ok)
	}
}

func TestDiscardMultiline(t *testing.T) {
	// Message lines after unstuffing: "a\r\n", ".\r\n", "..b\r\n", and a
	// line longer than the buffer that starts with a dot.
	long := "." + strings.Repeat("z", 40) + "\r\n"
	wire := "a\r\n..\r\n...b\r\n." + long + ".\r\nNEXT"
	c := &conn{op: "test", r: bufio.NewReaderSize(strings.NewReader(wire), 16)}
	n, err := c.discardMultiline()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("a\r\n") + len(".\r\n") + len("..b\r\n") + len(long)); n != want {
		t.Errorf("counted %d octets, want %d", n, want)
	}
	rest, _ := c.r.ReadString(0)
	if rest != "NEXT" {
		t.Errorf("stopped before %q, want NEXT", rest)
	}
	c = &conn{op: "test", r: bufio.NewReaderSize(strings.NewReader("a\r\nb"), 16)}
	if _, err := c.discardMultiline(); !errors.Is(err, mailaccess.ErrConnection) {
		t.Errorf("unterminated answer: got %v, want ErrConnection", err)
	}
}
