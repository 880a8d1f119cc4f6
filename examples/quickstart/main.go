// Command quickstart tells the POP-vs-IMAP story with running code and
// nothing to install.
//
// It starts an in-process POP3 server and an in-process IMAP server, each
// holding the same three messages for alice. Then two devices, a laptop and
// a phone, read each account one after the other: over POP3 with
// DeleteAfterFetch (classic POP: download, then delete from the server),
// and over IMAP with KeepOnServer (the mail stays on the server for every
// device). It prints what each device received and what is left on each
// server.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

const user, password = "alice", "correct horse battery staple"

func messages() [][]byte {
	subjects := []string{"Welcome to unimail", "Your invoice for November", "Lunch on Friday?"}
	var out [][]byte
	for i, s := range subjects {
		m := fmt.Sprintf("From: bob@example.com\r\nTo: alice@example.com\r\nSubject: %s\r\nMessage-ID: <%d@example.com>\r\nDate: Wed, 25 Nov 2026 09:0%d:00 +0000\r\n\r\nHello Alice, this is message %d.\r\n", s, i+1, i, i+1)
		out = append(out, []byte(m))
	}
	return out
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "quickstart: %v\n", err)
		os.Exit(1)
	}
}

// device is one program reading one account, with its own memory of what
// it has seen.
type device struct {
	name  string
	state mailaccess.MemoryState
}

func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	popSrv := poptest.NewUnstartedServer(nil)
	popSrv.StartTLS()
	defer popSrv.Close()
	imapSrv := imaptest.NewUnstartedServer(nil)
	imapSrv.StartTLS()
	defer imapSrv.Close()

	popSrv.AddUser(user, password)
	imapSrv.AddUser(user, password)
	for _, m := range messages() {
		popSrv.AddMessage(user, m)
		imapSrv.Append(user, "INBOX", m)
	}

	fmt.Fprintf(w, "Two servers hold the same %d messages for %s:\n", len(messages()), user)
	fmt.Fprintf(w, "  POP3 server at %s (pop3s)\n  IMAP server at %s (imaps)\n\n", popSrv.Addr, imapSrv.Addr)

	laptop, phone := &device{name: "laptop"}, &device{name: "phone"}

	fmt.Fprintln(w, "POP3, retention DeleteAfterFetch (classic POP: download, then delete from the server):")
	popURL := "pop3s://" + user + "@" + popSrv.Addr
	for _, d := range []*device{laptop, phone} {
		if err := read(ctx, w, d, popURL, popSrv.ClientTLSConfig(), mailaccess.DeleteAfterFetch); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nIMAP, retention KeepOnServer (the mail stays on the server for every device):")
	imapURL := "imaps://" + user + "@" + imapSrv.Addr + "/INBOX"
	for _, d := range []*device{laptop, phone} {
		if err := read(ctx, w, d, imapURL, imapSrv.ClientTLSConfig(), mailaccess.KeepOnServer); err != nil {
			return err
		}
	}
	// Reading again finds nothing new: the state remembers.
	if err := read(ctx, w, laptop, imapURL, imapSrv.ClientTLSConfig(), mailaccess.KeepOnServer); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nLeft on the servers:")
	fmt.Fprintf(w, "  POP3 server: %d messages\n", len(popSrv.Messages(user)))
	fmt.Fprintf(w, "  IMAP server: %d messages\n", len(imapSrv.Messages(user, "INBOX")))
	fmt.Fprintln(w, "\nWith POP3 the mail now lives on the laptop only; with IMAP it lives on the server and every device sees it.")
	return nil
}

func read(ctx context.Context, w io.Writer, d *device, url string, tlsConfig *tls.Config, ret mailaccess.Retention) error {
	mb, err := unimail.Dial(ctx, url, &unimail.Options{DialOptions: mailaccess.DialOptions{
		Auth:      mailaccess.Auth{Password: password},
		TLSConfig: tlsConfig,
	}})
	if err != nil {
		return err
	}
	f := &mailaccess.Fetcher{Retention: ret, State: &d.state}
	var subjects []string
	rep, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
		subjects = append(subjects, subject(m))
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  %-6s received %d new message(s)", d.name, rep.Delivered)
	if rep.Skipped > 0 {
		fmt.Fprintf(w, ", %d already seen", rep.Skipped)
	}
	if rep.Deleted > 0 {
		fmt.Fprintf(w, ", deleted %d from the server", rep.Deleted)
	}
	fmt.Fprintln(w)
	for _, s := range subjects {
		fmt.Fprintf(w, "           - %s\n", s)
	}
	return nil
}

// subject reads the message's Subject with go-message. The handler that
// calls it returns nil, which means "this device has the message" whatever
// it read: the Fetcher reads the rest (to fingerprint it), records it, and
// applies the retention. A handler that stores messages reads Body whole.
func subject(m *mailaccess.Message) string {
	r, err := m.Parse()
	if err != nil {
		return "(unparsable message)"
	}
	s, err := r.Header.Subject()
	if err != nil || s == "" {
		return "(no subject)"
	}
	return strings.TrimSpace(s)
}
