package imap

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/driver"
)

// Account is a session with a whole IMAP account: it lists the account's
// folders and opens them one after the other on its one connection,
// each with a SELECT, without logging in again. It implements
// driver.Account.
//
// Like a Mailbox, it is driven by one goroutine at a time; Abort alone
// may be called from any goroutine, at any time.
type Account struct {
	s    *Mailbox // the session: logged in, with no folder of its own
	name string

	mu     sync.Mutex
	cur    *Mailbox // the folder opened last
	closed bool
}

var _ driver.Account = (*Account)(nil)

// DialAccount connects to the IMAP server at addr as Dial does (the same
// address forms, security, login and errors) but selects no folder: the
// folders are listed with Folders and opened with Open. opts.Folder is
// not used. On every error the *Account is nil.
func DialAccount(ctx context.Context, addr string, opts *Options) (*Account, error) {
	m, err := dial(ctx, addr, opts, false)
	if err != nil {
		return nil, err
	}
	return &Account{s: m, name: mailboxName(m.opts.Auth.Username, m.host, "")}, nil
}

// Name returns "imap://user@host/", the prefix of the Names of the
// account's folders (see Mailbox.Name). It holds no credential.
func (a *Account) Name() string { return a.name }

// Folders lists every folder of the account with LIST "" "*" (RFC 3501
// section 6.3.8), with RETURN (SPECIAL-USE) when the server announces
// SPECIAL-USE (RFC 6154) and LIST-EXTENDED (RFC 5258) or IMAP4rev2, so
// that \Junk, \Trash, \Sent and the others are reported. Names are
// decoded from modified UTF-7 (RFC 3501 section 5.1.3). Unselectable
// folders (\Noselect, \NonExistent) are listed too, with their attribute.
// A name that holds CR, LF or NUL, which no command could carry back
// safely, is left out and logged at Warn. The same name listed twice is
// reported once.
//
// A folder opened by Open must have been ended first (ErrInvalidArgument
// otherwise).
func (a *Account) Folders(ctx context.Context) ([]driver.FolderInfo, error) {
	const op = opListFolders
	if err := a.idle(op); err != nil {
		return nil, err
	}
	m := a.s
	if err := m.ready(ctx, op); err != nil {
		return nil, m.warn(op, err)
	}
	var lo *imap.ListOptions
	if m.caps.Has(imap.CapSpecialUse) && (m.caps.Has(imap.CapListExtended) || m.caps.Has(imap.CapIMAP4rev2)) {
		lo = &imap.ListOptions{ReturnSpecialUse: true}
	}
	g := m.begin(ctx, boundTotal)
	list, err := m.client.List("", "*", lo).Collect()
	g.end()
	if err != nil {
		return nil, m.warn(op, m.fail(op, err, nil))
	}
	out := make([]driver.FolderInfo, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, d := range list {
		if strings.ContainsAny(d.Mailbox, "\r\n\x00") {
			m.log.Warn("imap folder name with CR, LF or NUL left out", "name", safetext.Sanitize(d.Mailbox))
			continue
		}
		if seen[d.Mailbox] {
			continue
		}
		seen[d.Mailbox] = true
		f := driver.FolderInfo{
			Name:      d.Mailbox,
			Delimiter: d.Delim,
			Mailbox:   mailboxName(m.opts.Auth.Username, m.host, d.Mailbox),
		}
		for _, at := range d.Attrs {
			f.Attributes = append(f.Attributes, canonicalAttr(string(at)))
		}
		out = append(out, f)
	}
	m.log.Debug("imap folders", "folders", len(out))
	return out, nil
}

// knownAttrs are the attributes that Folders spells as driver's Attr*
// constants do, whatever the server's letter case.
var knownAttrs = []string{
	driver.AttrNoSelect, driver.AttrNonExistent, driver.AttrAll, driver.AttrArchive,
	driver.AttrDrafts, driver.AttrFlagged, driver.AttrJunk, driver.AttrSent, driver.AttrTrash,
	`\HasChildren`, `\HasNoChildren`, `\Marked`, `\Unmarked`, `\Subscribed`, `\Remote`, `\NoInferiors`,
}

func canonicalAttr(a string) string {
	for _, k := range knownAttrs {
		if strings.EqualFold(a, k) {
			return k
		}
	}
	return safetext.Sanitize(a)
}

// Open selects the folder called name (decoded; it is encoded in modified
// UTF-7 for the server) read-write on the account's connection and
// returns its Mailbox, a *Mailbox with the same behaviour as one from
// Dial, whose Name is "imap://user@host/<name>" and whose UIDs carry the
// folder's own UIDVALIDITY. Its Close commits its deletion marks (UID
// STORE and UID EXPUNGE, as Mailbox.Close says) and leaves the connection
// to the account, without LOGOUT; its Abort closes the connection, which
// rolls the marks back exactly and ends the account's session too.
//
// One folder is open at a time: Open while the last one is still open is
// ErrInvalidArgument. A name holding CR, LF or NUL is ErrInvalidArgument
// and nothing is sent. A folder that the server refuses (it does not
// exist: ErrNotFound; another NO: ErrServer, ErrInUse, ...) leaves the
// session usable for the next Open. On every error the Mailbox is nil.
func (a *Account) Open(ctx context.Context, name string) (mailaccess.Mailbox, error) {
	const op = opSelect
	if err := mailerr.CheckArg("folder", name); err != nil {
		return nil, mailerr.WithOp(op, err)
	}
	if err := a.idle(op); err != nil {
		return nil, err
	}
	s := a.s
	if err := s.ready(ctx, op); err != nil {
		return nil, s.warn(op, err)
	}
	fm := &Mailbox{
		opts:        s.opts,
		name:        mailboxName(s.opts.Auth.Username, s.host, name),
		host:        s.host,
		conn:        s.conn,
		client:      s.client,
		caps:        s.caps,
		capList:     s.capList,
		secrets:     s.secrets,
		idleRestart: s.idleRestart,
		changed:     s.changed,
		strays:      s.strays,
		arrivals:    s.arrivals,
		litFailed:   s.litFailed,
		marks:       make(map[imap.UID]struct{}),
		tracer:      s.tracer,
		wire:        s.wire,
		total:       s.total,
		ctl:         s.ctl,
		acct:        a,
	}
	fm.opts.Folder = name
	fm.log = s.opts.Logger.With("mailbox", fm.name)
	// What the server said about the last folder is no news of this one.
	select {
	case <-s.changed:
	default:
	}
	s.arrivals.Store(false)
	if err := fm.selectFolder(ctx); err != nil {
		return nil, fm.warn(op, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		// Aborted meanwhile.
		fm.mu.Lock()
		fm.closed = true
		fm.mu.Unlock()
		return nil, mailerr.New(op, mailaccess.ErrConnection, "", errSessionClosed)
	}
	a.cur = fm
	return fm, nil
}

// idle returns an error when the account was ended or a folder it opened
// is still open.
func (a *Account) idle(op string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return mailerr.New(op, mailaccess.ErrConnection, "", errSessionClosed)
	}
	if a.cur != nil && !a.cur.isClosed() {
		return mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("the folder opened last must be closed first"))
	}
	return nil
}

// release takes the connection back from fm, whose Close has ended: the
// session stays usable unless fm left something unread on it, in which
// case the connection is closed.
func (a *Account) release(fm *Mailbox) {
	fm.mu.Lock()
	r := fm.reader
	fm.mu.Unlock()
	fm.pf.mu.Lock()
	busy := len(fm.pf.windows) > 0
	fm.pf.mu.Unlock()
	if r != nil || busy {
		fm.shutdown()
	}
}

// Close ends the session with LOGOUT. A folder still open is aborted
// first (its marks rolled back). Close on a nil *Account returns an error
// matching ErrInvalidArgument; LOGOUT errors are ignored.
func (a *Account) Close(ctx context.Context) error {
	if a == nil {
		return mailerr.New(opLogout, mailaccess.ErrInvalidArgument, "", errors.New("nil *imap.Account: there is no session (did DialAccount fail?)"))
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return mailerr.New(opLogout, mailaccess.ErrConnection, "", errSessionClosed)
	}
	cur := a.cur
	a.mu.Unlock()
	if cur != nil && !cur.isClosed() {
		cur.Abort()
	}
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return a.s.Close(ctx)
}

// Abort ends the session at once, without LOGOUT; the marks of an open
// folder are dropped with the connection. It is safe to call at any
// time, from any goroutine, more than once, and on a nil *Account; it
// always returns nil.
func (a *Account) Abort() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	a.closed = true
	cur := a.cur
	a.mu.Unlock()
	if cur != nil {
		cur.Abort()
	}
	return a.s.Abort()
}

// isClosed reports whether Close or Abort was called.
func (m *Mailbox) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}
