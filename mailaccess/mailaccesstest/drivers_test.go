package mailaccesstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

const user, pass = "alice", "alice-password"

type popHarness struct{ s *poptest.Server }

func (h popHarness) Seed(t testing.TB, msgs [][]byte) { h.s.SetMessages(user, msgs) }
func (h popHarness) Contents(t testing.TB) [][]byte   { return h.s.Messages(user) }
func (h popHarness) Addr() string                     { return h.s.Addr }
func (h popHarness) ResetUIDs(t testing.TB)           { h.s.RenumberUIDs(user) }
func (h popHarness) Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error) {
	return pop.Dial(ctx, addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: pass},
			TLSConfig: h.s.ClientTLSConfig(),
			Timeout:   5 * time.Second,
		},
	})
}

func TestPOP3Conformance(t *testing.T) {
	mailaccesstest.Run(t, func(t *testing.T) mailaccesstest.Server {
		s := poptest.NewTLSServer(t, nil)
		s.AddUser(user, pass)
		return popHarness{s}
	}, &mailaccesstest.Options{Short: testing.Short()})
}

func TestPOP3STLSConformance(t *testing.T) {
	mailaccesstest.Run(t, func(t *testing.T) mailaccesstest.Server {
		s := poptest.NewServer(t, nil)
		s.AddUser(user, pass)
		return popSTLS{popHarness{s}}
	}, &mailaccesstest.Options{Short: true})
}

type popSTLS struct{ popHarness }

func (h popSTLS) Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error) {
	return pop.Dial(ctx, addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: pass},
			Security:  mailaccess.SecurityStartTLS,
			TLSConfig: h.s.ClientTLSConfig(),
			Timeout:   5 * time.Second,
		},
	})
}

type imapHarness struct {
	s        *imaptest.Server
	security mailaccess.Security
}

func (h imapHarness) Seed(t testing.TB, msgs [][]byte) { h.s.SetMessages(user, "INBOX", msgs) }
func (h imapHarness) Contents(t testing.TB) [][]byte   { return h.s.Messages(user, "INBOX") }
func (h imapHarness) FolderContents(t testing.TB, f string) [][]byte {
	return h.s.Messages(user, f)
}
func (h imapHarness) Addr() string           { return h.s.Addr }
func (h imapHarness) ResetUIDs(t testing.TB) { h.s.ResetUIDValidity(user, "INBOX") }
func (h imapHarness) Dial(ctx context.Context, addr string) (mailaccess.Mailbox, error) {
	return imap.Dial(ctx, addr, &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: user, Password: pass},
			Security:  h.security,
			TLSConfig: h.s.ClientTLSConfig(),
			Timeout:   5 * time.Second,
		},
	})
}

func TestIMAPConformance(t *testing.T) {
	mailaccesstest.Run(t, func(t *testing.T) mailaccesstest.Server {
		s := imaptest.NewTLSServer(t, nil)
		s.AddUser(user, pass)
		return imapHarness{s: s}
	}, &mailaccesstest.Options{Short: testing.Short()})
}

func TestIMAPSTARTTLSConformance(t *testing.T) {
	mailaccesstest.Run(t, func(t *testing.T) mailaccesstest.Server {
		s := imaptest.NewServer(t, nil)
		s.AddUser(user, pass)
		return imapHarness{s: s, security: mailaccess.SecurityStartTLS}
	}, &mailaccesstest.Options{Short: true})
}
