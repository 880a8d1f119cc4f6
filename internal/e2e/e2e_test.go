package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/pop"
)

const (
	user     = "alice"
	password = "alice-password"
)

// way is one way into Dovecot.
type way struct {
	name     string
	protocol string
	security mailaccess.Security
	addr     func(d *dovecottest.Server) string
}

var ways = []way{
	{"POP3S", "pop3", mailaccess.SecurityTLS, func(d *dovecottest.Server) string { return d.POP3SAddr }},
	{"POP3+STLS", "pop3", mailaccess.SecurityStartTLS, func(d *dovecottest.Server) string { return d.POP3Addr }},
	{"IMAPS", "imap", mailaccess.SecurityTLS, func(d *dovecottest.Server) string { return d.IMAPSAddr }},
	{"IMAP+STARTTLS", "imap", mailaccess.SecurityStartTLS, func(d *dovecottest.Server) string { return d.IMAPAddr }},
}

func dialWay(ctx context.Context, d *dovecottest.Server, w way, addr, folder string) (mailaccess.Mailbox, error) {
	auth := mailaccess.Auth{Username: user, Password: password}
	if w.protocol == "pop3" {
		return pop.Dial(ctx, addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: auth, Security: w.security, TLSConfig: d.ClientTLSConfig(), Timeout: 10 * time.Second}})
	}
	return imap.Dial(ctx, addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: auth, Security: w.security, TLSConfig: d.ClientTLSConfig(), Timeout: 10 * time.Second}, Folder: folder})
}

// harness adapts a Dovecot and one way in to mailaccesstest.Server.
type harness struct {
	d *dovecottest.Server
	w way
}

func (h harness) Seed(t testing.TB, msgs [][]byte) { h.d.Seed(t, user, "INBOX", msgs) }
func (h harness) Contents(t testing.TB) [][]byte   { return h.d.Messages(t, user, "INBOX") }
func (h harness) FolderContents(t testing.TB, f string) [][]byte {
	return h.d.Messages(t, user, f)
}
func (h harness) Addr() string { return h.w.addr(h.d) }

// ResetUIDs changes the UIDVALIDITY; Dovecot's POP3 UIDLs here include
// it (pop3_uidl_format %08Xu%08Xv), so POP3 sees renumbered UIDLs.
func (h harness) ResetUIDs(t testing.TB) { h.d.ResetUIDValidity(t, user, "INBOX") }
func (h harness) Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error) {
	return dialWay(ctx, h.d, h.w, addr, "INBOX")
}

func TestDovecotConformance(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			mailaccesstest.Run(t, func(t *testing.T) mailaccesstest.Server {
				return harness{d: dovecottest.Start(t, nil), w: w}
			}, &mailaccesstest.Options{Short: testing.Short() || w.security == mailaccess.SecurityStartTLS})
		})
	}
}
