package mailerr

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

func TestContextErr(t *testing.T) {
	if err := ContextErr(t.Context()); err != nil {
		t.Fatalf("live context: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ContextErr(ctx); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	if err := ContextErr(ctx); err != context.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	boom := errors.New("shutting down")
	ctx, cancelCause := context.WithCancelCause(t.Context())
	cancelCause(boom)
	err := ContextErr(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) || err.Error() != "context canceled: shutting down" {
		t.Fatalf("with a cause: %v", err)
	}
	e := New("pop3 list", mailaccess.ErrConnection, "", err)
	if mailaccess.IsTemporary(e) {
		t.Fatalf("%v is temporary", e)
	}
	// A deadline that has passed before the context's timer fired.
	if err := ContextErr(pastDeadline{t.Context()}); err != context.DeadlineExceeded {
		t.Fatalf("passed deadline, context not yet done: %v", err)
	}
}

// pastDeadline has a deadline in the past but is not done yet, as a
// context is between its deadline and its timer.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestTimeoutError(t *testing.T) {
	// A socket's timeout, and a dialer's, which matches
	// context.DeadlineExceeded: neither passes for the caller's context.
	for _, low := range []error{os.ErrDeadlineExceeded, &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, nil} {
		te := &TimeoutError{After: 1500 * time.Millisecond, Err: low}
		e := New("imap list", mailaccess.ErrConnection, "", te)
		if e.Error() != "imap list: connection failed: timed out after 1.5s" {
			t.Errorf("text %q", e.Error())
		}
		var ne net.Error
		if !errors.As(e, &ne) || !ne.Timeout() {
			t.Errorf("%v: not a net.Error timeout", e)
		}
		if !mailaccess.IsTemporary(e) || errors.Is(e, context.DeadlineExceeded) {
			t.Errorf("%v: IsTemporary %v, DeadlineExceeded %v", e, mailaccess.IsTemporary(e), errors.Is(e, context.DeadlineExceeded))
		}
		if low == os.ErrDeadlineExceeded && !errors.Is(e, os.ErrDeadlineExceeded) {
			t.Errorf("%v: the lower-level error is lost", e)
		}
	}
}

func TestHideContext(t *testing.T) {
	if HideContext(nil) != nil {
		t.Fatal("nil")
	}
	plain := io.EOF
	if HideContext(plain) != plain {
		t.Fatal("an error without a context error changed")
	}
	wrapped := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	h := HideContext(wrapped)
	if errors.Is(h, context.DeadlineExceeded) || h.Error() != wrapped.Error() {
		t.Fatalf("%v: still a context error, or another text", h)
	}
}

func TestServerTextAndWithOp(t *testing.T) {
	for _, c := range []struct{ code, text, want string }{
		{"", "no", "no"},
		{"SYS/TEMP", "later", "[SYS/TEMP] later"},
		{"UNAVAILABLE", "", "[UNAVAILABLE]"},
	} {
		if got := ServerText(c.code, c.text); got != c.want {
			t.Errorf("ServerText(%q, %q) = %q, want %q", c.code, c.text, got, c.want)
		}
	}
	err := WithOp("pop3 login", CheckArg("password", "a\r\nQUIT"))
	if err.Error() != "pop3 login: invalid argument: password contains CR, LF or NUL" {
		t.Fatalf("%v", err)
	}
	if WithOp("imap select", err).Error() != err.Error() {
		t.Fatal("WithOp replaced an operation")
	}
}

func TestRecast(t *testing.T) {
	conn := New("imap commit", mailaccess.ErrConnection, "", &TimeoutError{After: time.Second})
	e := Recast(conn, mailaccess.ErrCommitUnknown, nil)
	if e.Error() != "imap commit: commit outcome unknown: connection failed: timed out after 1s" {
		t.Fatalf("text %q", e.Error())
	}
	if !errors.Is(e, mailaccess.ErrCommitUnknown) || !errors.Is(e, mailaccess.ErrConnection) || !mailaccess.IsTemporary(e) {
		t.Fatalf("%v: kinds lost", e)
	}
	refused := New("imap move", mailaccess.ErrServer, "[OVERQUOTA] full", nil)
	e = Recast(refused, mailaccess.ErrCommitFailed, mailaccess.ErrCopiedNotRemoved)
	if e.Error() != `imap move: commit failed: server said "[OVERQUOTA] full": the messages were copied to the target folder but are still in this one: server refused the command` {
		t.Fatalf("text %q", e.Error())
	}
	if !errors.Is(e, mailaccess.ErrCopiedNotRemoved) || !errors.Is(e, mailaccess.ErrServer) || mailaccess.IsTemporary(e) {
		t.Fatalf("%v: kinds lost", e)
	}
}
