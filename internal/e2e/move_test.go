package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// cutter is a trace that cuts the connection just before the client
// sends a command containing cut, and keeps the whole trace.
type cutter struct {
	mu    sync.Mutex
	conn  net.Conn
	cut   string
	trace bytes.Buffer
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	return conn, err
}

func (c *cutter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trace.Write(p)
	if c.cut != "" && bytes.HasPrefix(p, []byte("C: ")) && bytes.Contains(p, []byte(c.cut)) {
		c.conn.Close()
	}
	return len(p), nil
}

// MoveTo on a Dovecot that does not announce MOVE: the move is UID COPY,
// UID STORE and UID EXPUNGE. When the connection is cut after the copy
// was answered, the next run only deletes: the target folder holds each
// message once, and the source none.
func TestMoveWithoutMOVEOnDovecot(t *testing.T) {
	d := dovecottest.Start(t, &dovecottest.Options{
		ExtraConfig: "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS NAMESPACE CHILDREN UNSELECT SPECIAL-USE\n",
	})
	msgs := [][]byte{mailaccesstest.Message(1), mailaccesstest.Message(2), mailaccesstest.Message(3)}
	d.Seed(t, user, "INBOX", msgs)
	f := &mailaccess.Fetcher{Retention: mailaccess.MoveTo("Archive"), State: &mailaccess.MemoryState{}}
	run := func(c *cutter) (mailaccess.Report, error) {
		mb, err := imap.Dial(t.Context(), d.IMAPSAddr, &imap.Options{
			DialOptions: mailaccess.DialOptions{
				Auth:        mailaccess.Auth{Username: user, Password: password},
				TLSConfig:   d.ClientTLSConfig(),
				Timeout:     10 * time.Second,
				DialContext: c.dial,
				Trace:       c,
			},
		})
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, d.Log())
		}
		if caps := mb.Describe().Capabilities; strings.Contains(strings.Join(caps, " "), "MOVE") {
			t.Fatalf("Dovecot announces MOVE: %v", caps)
		}
		return f.Fetch(t.Context(), mb, func(ctx context.Context, m *mailaccess.Message) error {
			_, err := io.Copy(io.Discard, m.Body)
			return err
		})
	}

	first := &cutter{cut: "UID STORE"}
	rep, err := run(first)
	if !errors.Is(err, mailaccess.ErrCopiedNotRemoved) || rep.Delivered != 3 {
		t.Fatalf("cut after the copy: %+v, %v\n%s", rep, err, first.trace.String())
	}
	if n := len(d.Messages(t, user, "Archive")); n != 3 {
		t.Fatalf("Archive holds %d messages after the copy", n)
	}

	second := &cutter{}
	rep, err = run(second)
	if err != nil || rep.Delivered != 0 || rep.Deleted != 3 || rep.Moved != 0 {
		t.Fatalf("rerun: %+v, %v\n%s", rep, err, second.trace.String())
	}
	if strings.Contains(second.trace.String(), "UID COPY") {
		t.Fatalf("the rerun copied again:\n%s", second.trace.String())
	}
	if archived := d.Messages(t, user, "Archive"); !equalSets(archived, msgs) {
		t.Fatalf("Archive holds %d messages, want each of the 3 once", len(archived))
	}
	if n := len(d.Messages(t, user, "INBOX")); n != 0 {
		t.Fatalf("INBOX still holds %d messages", n)
	}
}
