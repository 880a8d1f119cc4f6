package imap

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Wait blocks until the server reports a change of the folder (EXISTS or
// EXPUNGE: new mail, or mail removed) or ctx ends, with IDLE (RFC 2177).
//
// ready, when not nil, is called once, as soon as the server has answered
// IDLE with its continuation ("+"): from then on, mail that arrives wakes
// the wait. It is not called when Wait returns before that (a change
// already reported, a server without IDLE, a failure).
//
// A change that the server reported since the last List, during any
// command, makes Wait return nil at once. When ctx ends while idling, IDLE
// is ended with DONE and Wait returns an ErrConnection error holding ctx's
// error (errors.Is finds context.Canceled or context.DeadlineExceeded);
// the session stays usable. (When ctx ends before the server acknowledged
// IDLE, the connection is closed, as for any other command.) IDLE is
// restarted every 20 minutes, which also checks that the server still
// answers; TCP keep-alive notices a dead peer in between. Starting and
// ending IDLE are each bounded by Options.Timeout, so a server that stops
// answering gives ErrConnection, never a hang. A server without IDLE is
// ErrUnsupported.
func (m *Mailbox) Wait(ctx context.Context, ready func()) error {
	const op = opIdle
	if err := m.ready(ctx, op); err != nil {
		return err
	}
	if err := m.settleOp(ctx, op, false); err != nil {
		return err
	}
	if !m.caps.Has(imap.CapIdle) {
		return mailerr.New(op, mailaccess.ErrUnsupported, "", errors.New("the server does not announce IDLE"))
	}
	for {
		select {
		case <-m.changed:
			return nil
		default:
		}

		// Until the server's "+", IDLE cannot be ended with DONE: a ctx
		// that ends then closes the connection, as for other commands.
		g := m.begin(ctx, boundTotal)
		idle, err := m.client.Idle()
		g.end()
		if err != nil {
			return m.fail(op, err, nil)
		}
		if ready != nil {
			ready()
			ready = nil
		}

		restart := time.NewTimer(m.idleRestart)
		var result error
		again := false
		select {
		case <-m.changed:
		case <-ctx.Done():
			result = ctxError(op, ctx)
		case <-restart.C:
			again = true
		case <-m.client.Closed():
		}
		restart.Stop()

		// DONE, bounded by Timeout alone: ctx may have ended already.
		g = m.begin(context.Background(), boundTotal)
		err = idle.Close()
		if err == nil {
			err = idle.Wait()
		}
		g.end()
		if err != nil {
			return m.fail(op, err, nil)
		}
		if m.conn.Reason() != nil || isClosed(m.client.Closed()) {
			return m.fail(op, errors.New("the connection closed during IDLE"), nil)
		}
		if !again {
			return result
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
