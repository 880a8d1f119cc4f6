package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// What a new user hits, on Dovecot over both protocols: a failed Dial
// returns a true nil, a wrong password reads the same way on both with
// the server's text once, and the caller's own deadline is never
// temporary.
func TestDialFailuresOnDovecot(t *testing.T) {
	d := dovecottest.Start(t, nil)
	for _, c := range []struct{ scheme, addr, folder string }{{"pop3s", d.POP3SAddr, ""}, {"imaps", d.IMAPSAddr, "/INBOX"}} {
		t.Run(c.scheme, func(t *testing.T) {
			url := c.scheme + "://" + user + "@" + c.addr + c.folder
			opts := &unimail.Options{}
			opts.TLSConfig = d.ClientTLSConfig()
			opts.Auth.Password = "not the password"
			mb, err := unimail.Dial(t.Context(), url, opts)
			if mb != nil {
				t.Fatal("Dial failed but returned a non-nil Mailbox")
			}
			proto := strings.TrimSuffix(c.scheme, "s")
			if !errors.Is(err, mailaccess.ErrAuth) || mailaccess.IsTemporary(err) || !strings.HasPrefix(err.Error(), proto+" login: authentication failed: server said ") {
				t.Fatalf("wrong password: %v", err)
			}
			if e, _ := errors.AsType[*mailaccess.Error](err); e == nil || e.Text == "" || strings.Count(err.Error(), e.Text) != 1 {
				t.Fatalf("the server's text should appear once: %v", err)
			}
			if strings.Contains(err.Error(), "not the password") {
				t.Fatal("the password is in the error")
			}

			opts.Auth.Password = password
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			defer cancel()
			time.Sleep(2 * time.Millisecond)
			mb, err = unimail.Dial(ctx, url, opts)
			if mb != nil || err == nil || !errors.Is(err, context.DeadlineExceeded) || mailaccess.IsTemporary(err) {
				t.Fatalf("the caller's deadline: mailbox %v, %v (temporary %v)", mb != nil, err, mailaccess.IsTemporary(err))
			}
		})
	}
}

// StopOnError and a handler that returns nil without reading, on
// Dovecot: the refusal stops the run and leaves that message and the
// later ones; the next run takes them in order without reading them, and
// they are deleted all the same.
func TestStopOnErrorOnDovecot(t *testing.T) {
	for _, w := range []way{popS, imapS} {
		t.Run(w.name, func(t *testing.T) {
			d := dovecottest.Start(t, nil)
			var msgs [][]byte
			for i := 1; i <= 5; i++ {
				msgs = append(msgs, mailaccesstest.Message(i))
			}
			d.Seed(t, user, "INBOX", msgs)
			f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}, StopOnError: true}
			seen := 0
			rep, err := f.Fetch(t.Context(), dialT(t, d, w, "INBOX"), func(ctx context.Context, m *mailaccess.Message) error {
				seen++
				b, err := readBody(m)
				if err == nil && bytes.Equal(b, msgs[2]) {
					return errors.New("not now")
				}
				return err
			})
			if !errors.Is(err, mailaccess.ErrHandler) || seen != 3 || rep.Delivered != 2 || rep.Deleted != 2 {
				t.Fatalf("first run: %+v, %v, the handler saw %d", rep, err, seen)
			}
			if left := d.Messages(t, user, "INBOX"); len(left) != 3 || !bytes.Equal(left[0], msgs[2]) {
				t.Fatalf("Dovecot holds %d messages, want messages 3 to 5", len(left))
			}
			rep, err = f.Fetch(t.Context(), dialT(t, d, w, "INBOX"), func(ctx context.Context, m *mailaccess.Message) error {
				return nil // "I have it", without reading
			})
			if err != nil || rep.Delivered != 3 || rep.Deleted != 3 || len(d.Messages(t, user, "INBOX")) != 0 {
				t.Fatalf("second run: %+v, %v", rep, err)
			}
		})
	}
}

func readBody(m *mailaccess.Message) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(m.Body)
	return b.Bytes(), err
}
