package mailaccess_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

func readAll(m *mailaccess.Message) ([]byte, error) { return io.ReadAll(m.Body) }

// bothProtocols runs f against an in-process POP3 and IMAP server, each
// holding n messages; contents returns what the server still holds.
func bothProtocols(t *testing.T, n int, f func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte)) {
	t.Run("pop3", func(t *testing.T) {
		s := popServer(t, nil, n)
		f(t, func() mailaccess.Mailbox { return dialPOP(t, s) }, func() [][]byte { return s.Messages(user) })
	})
	t.Run("imap", func(t *testing.T) {
		s := imapServer(t, nil, n)
		f(t, func() mailaccess.Mailbox { return dialIMAP(t, s) }, func() [][]byte { return s.Messages(user, "INBOX") })
	})
}

// Returning nil means "I have it", whatever the handler read: a handler
// that reads nothing still gets the message recorded (with the size and
// fingerprint of all of it) and, under DeleteAfterFetch, deleted.
func TestHandlerReturningNilTakesTheMessage(t *testing.T) {
	bothProtocols(t, 3, func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte) {
		st := &mailaccess.MemoryState{}
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: st}
		var names []string
		rep, err := f.Fetch(t.Context(), dial(), func(ctx context.Context, m *mailaccess.Message) error {
			if m.Info.UID == "" {
				t.Error("message without UID")
			}
			names = append(names, string(m.Info.UID))
			return nil // reads nothing
		})
		if err != nil || rep.Delivered != 3 || rep.Deleted != 3 {
			t.Fatalf("%+v, %v", rep, err)
		}
		var total int64
		for i := 1; i <= 3; i++ {
			total += int64(len(mailaccesstest.Message(i)))
		}
		if rep.Bytes != total {
			t.Fatalf("report counts %d octets, want %d (the whole messages)", rep.Bytes, total)
		}
		if n := len(contents()); n != 0 {
			t.Fatalf("server holds %d messages", n)
		}
	})
}

// StopOnError: the first refusal ends the run; what came before is
// committed, that message and every later one stay, unopened, for the
// next run, which then delivers them in order.
func TestStopOnError(t *testing.T) {
	bothProtocols(t, 5, func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte) {
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}, StopOnError: true}
		var seen [][]byte
		refuse := mailaccesstest.Message(3)
		rep, err := f.Fetch(t.Context(), dial(), func(ctx context.Context, m *mailaccess.Message) error {
			b, err := readAll(m)
			if err != nil {
				return err
			}
			seen = append(seen, b)
			if bytes.Equal(b, refuse) {
				return errors.New("not now")
			}
			return nil
		})
		if !errors.Is(err, mailaccess.ErrHandler) || rep.Delivered != 2 || rep.Failed != 1 || rep.Deleted != 2 {
			t.Fatalf("first run: %+v, %v", rep, err)
		}
		if len(seen) != 3 {
			t.Fatalf("the handler saw %d messages, want 3 (none after the refusal)", len(seen))
		}
		left := contents()
		if len(left) != 3 || !bytes.Equal(left[0], refuse) {
			t.Fatalf("server holds %d messages, want messages 3 to 5", len(left))
		}
		seen = nil
		rep, err = f.Fetch(t.Context(), dial(), func(ctx context.Context, m *mailaccess.Message) error {
			b, err := readAll(m)
			seen = append(seen, b)
			return err
		})
		if err != nil || rep.Delivered != 3 {
			t.Fatalf("second run: %+v, %v", rep, err)
		}
		for i, b := range seen {
			if !bytes.Equal(b, mailaccesstest.Message(3+i)) {
				t.Fatalf("second run: message %d out of order", i)
			}
		}
	})
}

// Without StopOnError a refusal does not stop the run: the later messages
// are delivered and their retention applied.
func TestRefusalWithoutStopOnError(t *testing.T) {
	bothProtocols(t, 5, func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte) {
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
		refuse := sha256.Sum256(mailaccesstest.Message(3))
		rep, err := f.Fetch(t.Context(), dial(), func(ctx context.Context, m *mailaccess.Message) error {
			b, err := readAll(m)
			if err == nil && sha256.Sum256(b) == refuse {
				return errors.New("not now")
			}
			return err
		})
		if !errors.Is(err, mailaccess.ErrHandler) || rep.Delivered != 4 || len(contents()) != 1 {
			t.Fatalf("%+v, %v, %d left", rep, err, len(contents()))
		}
	})
}

// The caller's own deadline ends a Fetch with an error that is not
// temporary (retrying would retry what the caller stopped), and nothing
// is lost: the next run delivers every message.
func TestCallerDeadlineIsNotTemporary(t *testing.T) {
	bothProtocols(t, 3, func(t *testing.T, dial func() mailaccess.Mailbox, contents func() [][]byte) {
		f := &mailaccess.Fetcher{Retention: mailaccess.DeleteAfterFetch, State: &mailaccess.MemoryState{}}
		mb := dial()
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		delivered := 0
		_, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
			time.Sleep(5 * time.Millisecond) // the deadline passes here
			delivered++
			_, err := readAll(m)
			return err
		})
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || mailaccess.IsTemporary(err) {
			t.Fatalf("Fetch after the caller's deadline: %v (temporary %v)", err, mailaccess.IsTemporary(err))
		}
		rep, err := f.Fetch(t.Context(), dial(), func(ctx context.Context, m *mailaccess.Message) error {
			_, err := readAll(m)
			return err
		})
		if err != nil || rep.Delivered+delivered < 3 || len(contents()) != 0 {
			t.Fatalf("next run: %+v, %v; %d left", rep, err, len(contents()))
		}
	})
}
