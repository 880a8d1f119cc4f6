package pop

import (
	"io"
	"slices"

	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/mailaccess"
)

// retrWindow is the number of RETRs that WillOpen lets Open keep in
// flight; more are sent when a quarter of them have been answered, so that
// the server always has work queued. retrBudget
// bounds the listed size of the messages in flight beyond the first, so
// that a plan the caller abandons costs little to discard: pipelining
// matters for small messages, whose round trips dominate.
const (
	retrWindow = 256
	retrBudget = 4 << 20
)

// planned is a message that the caller said it will open.
type planned struct {
	uid mailaccess.UID
	e   entry
}

// WillOpen tells the Mailbox that the caller is going to Open these
// messages next, in this order, reading each to its end or closing it. On
// a server that announces PIPELINING (RFC 2449 section 6.6), Open then
// sends the RETRs of the following messages ahead (up to 256 messages, or
// 4 MiB as listed, at a time), so that a run over many small messages waits
// for one round trip per batch instead of one per message. No message is
// held in memory for that: the answers wait in the connection until they
// are read.
//
// A RETR sent ahead whose message is then not opened (the caller opens
// something else, or calls List, Delete or Close) is read and discarded
// first, which costs its transfer. Retrieving a message has a side effect
// on servers that delete what was retrieved ("EXPIRE 0", see Describe), so
// on those WillOpen does nothing; it also does nothing without PIPELINING
// or before the mail drop was listed. UIDs that are not in the listing or
// are marked for deletion are left out. A new
// call replaces the previous plan; WillOpen() with no UIDs cancels it.
func (m *Mailbox) WillOpen(uids ...mailaccess.UID) {
	m.plan = nil
	if !m.pipelining || m.expire0 || !m.listed {
		return
	}
	plan := make([]planned, 0, len(uids))
	for _, uid := range uids {
		e, ok := m.byUID[uid]
		if !ok || m.marked[e.num] {
			continue
		}
		plan = append(plan, planned{uid: uid, e: e})
	}
	// RETRs already in flight stay valid when the new plan starts with
	// them.
	if n := len(m.inflight); n > 0 && len(plan) >= n && slices.Equal(uidsOf(plan[:n]), uidsOf(m.inflight)) {
		plan = plan[n:]
	}
	m.plan = plan
}

func uidsOf(p []planned) []mailaccess.UID {
	out := make([]mailaccess.UID, len(p))
	for i, x := range p {
		out[i] = x.uid
	}
	return out
}

// retr sends (or finds already sent) the RETR of cur and reads its status
// line; the body, on +OK, is next on the wire.
func (m *Mailbox) retr(op string, cur planned) (result, error) {
	if len(m.inflight) > 0 && m.inflight[0].uid != cur.uid {
		if err := m.settle(op); err != nil {
			return result{}, err
		}
	}
	if len(m.inflight) == 0 {
		if i := slices.IndexFunc(m.plan, func(p planned) bool { return p.uid == cur.uid }); i >= 0 {
			m.plan = m.plan[i:]
		} else {
			res, err := m.run(op, []command{{name: "RETR", arg: cur.e.num}})
			if err != nil {
				return result{}, err
			}
			return res[0], nil
		}
	}
	// cur is in flight or at the head of the plan: top the window up.
	if len(m.inflight) <= retrWindow*3/4 && len(m.plan) > 0 {
		var bytes int64
		for _, p := range m.inflight {
			bytes += p.e.size
		}
		m.g.Cork()
		for len(m.inflight) < retrWindow && len(m.plan) > 0 {
			p := m.plan[0]
			if len(m.inflight) > 0 && bytes+p.e.size > retrBudget {
				break
			}
			bytes += p.e.size
			m.plan = m.plan[1:]
			m.inflight = append(m.inflight, p)
			// Corked: only buffered, in the Gate (go-pop3's Send would
			// make a string per command).
			m.cmd = command{name: "RETR", arg: p.e.num}.appendLine(m.cmd[:0])
			_, _ = m.g.Write(m.cmd)
		}
		if err := m.g.Uncork(); err != nil {
			return result{}, m.fail(op, err)
		}
	}
	m.inflight = m.inflight[1:]
	m.g.Expect(popwire.MaxListLine, 0)
	return m.outcome(op, nil, m.g.ReadStatus())
}

// settle reads and discards the answers to RETRs sent ahead that the
// caller did not open, and drops the plan, so that the next command's
// answer is the next on the wire.
func (m *Mailbox) settle(op string) error {
	m.plan = nil
	for len(m.inflight) > 0 {
		p := m.inflight[0]
		m.inflight = m.inflight[1:]
		m.g.Expect(popwire.MaxListLine, 0)
		r, err := m.outcome(op, nil, m.g.ReadStatus())
		if err != nil {
			return err
		}
		if !r.ok {
			continue
		}
		m.retrieved++
		var dot popwire.DotReader
		m.w.StartDot(&dot, bodyLimit(p.e), listedAs(p.e.size))
		if _, err := io.Copy(io.Discard, &dot); err != nil {
			return m.fail(op, err)
		}
	}
	return nil
}
