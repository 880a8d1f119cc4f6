package pop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	pop3 "github.com/knadh/go-pop3"

	"github.com/unimail/unimail/internal/dialopt"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/mailaccess"
)

// Dial connects to the POP3 server at addr ("host:port"; an IPv6 host in
// brackets), secures the connection as opts.Security says, logs in, and
// returns the session in the TRANSACTION state (RFC 1939 section 5).
//
// In order, Dial: connects (bounded by DialTimeout); with implicit TLS,
// runs the handshake; reads the greeting (a line of a few KiB at most,
// keeping the APOP timestamp); asks CAPA (RFC 2449; a server that answers
// -ERR is taken as an RFC 1939 server without extensions); with
// SecurityStartTLS, upgrades with STLS (RFC 2595) and asks CAPA again;
// logs in; and asks CAPA once more, since the capabilities may change
// after login (RFC 2449 section 5). On a server without CAPA it also lists
// the mail drop once, to learn whether UIDL works, and List returns that
// listing.
//
// Every value that reaches the wire is checked for CR, LF and NUL before
// anything is sent (mailaccess.ErrInvalidArgument). Errors: a refused
// login is mailaccess.ErrAuth (also with the response code SYS/PERM),
// except for the response codes (RFC 2449 section 8, RFC 3206) IN-USE,
// which is mailaccess.ErrInUse, and SYS/TEMP and LOGIN-DELAY, which say
// that the server is unavailable for now and are
// mailaccess.ErrUnavailable. A TLS failure, or STLS not offered or
// refused, is mailaccess.ErrTLS; a greeting that is garbage or a line
// without end is mailaccess.ErrProtocol; a -ERR greeting is
// mailaccess.ErrUnavailable (mailaccess.ErrServer with SYS/PERM); a
// transport failure, a timeout or the end of ctx is
// mailaccess.ErrConnection (holding ctx's error in the last case). No
// error ever holds a credential. On every error the *Mailbox is nil.
func Dial(ctx context.Context, addr string, opts *Options) (*Mailbox, error) {
	var o mailaccess.DialOptions
	if opts != nil {
		o = dialopt.Resolve(&opts.DialOptions)
	} else {
		o = dialopt.Resolve(nil)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, mailerr.New(opConnect, mailaccess.ErrInvalidArgument, "", fmt.Errorf("address must be host:port"))
	}
	if err := mailerr.CheckArg("address", addr); err != nil {
		return nil, mailerr.WithOp(opConnect, err)
	}
	switch o.Security {
	case mailaccess.SecurityTLS, mailaccess.SecurityStartTLS, mailaccess.SecurityInsecureCleartext:
	default:
		return nil, mailerr.New(opConnect, mailaccess.ErrInvalidArgument, "", fmt.Errorf("unknown security mode %d", o.Security))
	}
	mech, err := checkAuth(o.Auth)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("server", addr)
	if err := ctx.Err(); err != nil {
		return nil, logWarn(log, ctxErr(opConnect, ctx))
	}
	d := &dialer{ctx: ctx, addr: addr, host: host, o: &o, mech: mech, log: log}
	d.port, _ = strconv.Atoi(port)
	if o.Auth.Token != nil && (mech == "" || mech == mailaccess.MechXOAuth2 || mech == mailaccess.MechOAuthBearer) {
		// Get the token before connecting, so that a token source that
		// fails costs no connection.
		if d.token, err = getToken(ctx, o.Auth); err != nil {
			return nil, logWarn(log, err)
		}
	}

	// go-pop3 dials through d, which returns a connection that is already
	// secured and authenticated, positioned after a synthetic greeting.
	c, err := pop3.New(pop3.Opt{Host: host, Port: d.port, Dialer: d}).NewConn()
	if err != nil {
		if d.w != nil {
			_ = d.w.Close()
		}
		var me *mailaccess.Error
		if errors.As(err, &me) {
			return nil, logWarn(log, err)
		}
		return nil, logWarn(log, wireErr(opGreeting, err))
	}
	m := &Mailbox{
		name:   mailboxName(o.Auth.Username, host),
		o:      o,
		w:      d.w,
		g:      d.gate,
		c:      c,
		caps:   d.caps,
		byUID:  make(map[mailaccess.UID]entry),
		marked: make(map[int]bool),
		log:    log,
	}
	if err := m.afterLogin(ctx); err != nil {
		_ = m.w.Close()
		return nil, logWarn(log, err)
	}
	return m, nil
}

// dialer is the go-pop3 Dialer that does everything before TRANSACTION
// state: connect, TLS, greeting, CAPA, STLS, login.
type dialer struct {
	ctx   context.Context
	addr  string
	host  string
	port  int
	o     *mailaccess.DialOptions
	mech  string
	token string
	log   *slog.Logger

	w         *popwire.Wire
	gate      *popwire.Gate
	caps      caps
	timestamp string // APOP timestamp from the greeting
}

// Dial implements pop3.Dialer. It ignores go-pop3's address (which it
// formats wrongly for IPv6) and uses the one given to pop.Dial.
func (d *dialer) Dial(_, _ string) (net.Conn, error) {
	raw, err := dialopt.Dial(d.ctx, d.o, "pop3", d.addr)
	if err != nil {
		return nil, err
	}
	d.w = popwire.New(raw, d.o.Timeout)
	if d.o.Trace != nil {
		d.w.SetTrace(d.o.Trace)
		d.w.AddSecret(d.o.Auth.Password, d.token)
	}
	d.log.Debug("connected", "security", d.o.Security.String())
	b := d.w.Bind(d.ctx)
	err = d.handshake()
	b.Unbind()
	if err != nil {
		_ = d.w.Close()
		return nil, err
	}
	d.gate = popwire.NewGate(d.w, "+OK\r\n")
	return d.gate, nil
}

// handshake runs everything from the first byte to a successful login.
func (d *dialer) handshake() error {
	if d.o.Security == mailaccess.SecurityTLS {
		if err := d.w.StartTLS(dialopt.TLSConfig(d.o.TLSConfig, d.host)); err != nil {
			return wireErr(opTLSHandshake, err)
		}
	}
	if err := d.greeting(); err != nil {
		return err
	}
	if err := d.capa(); err != nil {
		return err
	}
	if d.o.Security == mailaccess.SecurityStartTLS {
		if err := d.stls(); err != nil {
			return err
		}
	}
	return d.login()
}

// apopTimestamp finds the msg-id style timestamp of an APOP greeting
// (RFC 1939 section 7).
var apopTimestamp = regexp.MustCompile(`<[!-;=?-~]+@[!-;=?-~]+>`)

func (d *dialer) greeting() error {
	const op = opGreeting
	line, err := d.w.ReadLine(popwire.MaxStatusLine)
	if err != nil {
		return wireErr(op, err)
	}
	if !popwire.ValidStatus(line) {
		return wireErr(op, d.w.Fail(popwire.Protocolf("the server's greeting %s is not +OK or -ERR; is this a POP3 server, and is the security mode right?", quoteStart(line))))
	}
	s := string(line)
	if strings.HasPrefix(s, "-ERR") {
		// A server that refuses service at connection time is usually
		// busy (mailaccess.ErrUnavailable); only [SYS/PERM] says that
		// retrying is useless (mailaccess.ErrServer).
		return serverErr(op, mailaccess.ErrUnavailable, parseErr(s))
	}
	d.timestamp = apopTimestamp.FindString(s)
	return nil
}

// capa asks CAPA and replaces d.caps with the answer. -ERR means a server
// without extensions (RFC 1939 only).
func (d *dialer) capa() error {
	const op = opCapabilities
	if err := d.w.WriteLine("CAPA"); err != nil {
		return wireErr(op, err)
	}
	st, err := d.w.ReadStatus()
	if err != nil {
		return wireErr(op, err)
	}
	if strings.HasPrefix(st, "-ERR") {
		d.caps = caps{}
		return nil
	}
	lines, err := d.w.ReadMultiline(maxCapaLines, maxCapaBytes)
	if err != nil {
		return wireErr(op, err)
	}
	d.caps = parseCaps(lines)
	return nil
}

// Limits of a CAPA response.
const (
	maxCapaLines = 256
	maxCapaBytes = 64 << 10
)

// stls upgrades the connection with STLS (RFC 2595 section 4) and asks
// CAPA again, forgetting what the server said in cleartext.
func (d *dialer) stls() error {
	const op = opStartTLS
	if !d.caps.has("STLS") {
		return mailerr.New(op, mailaccess.ErrTLS, "", errors.New("the server does not offer STLS"))
	}
	if err := d.w.WriteLine("STLS"); err != nil {
		return wireErr(op, err)
	}
	st, err := d.w.ReadStatus()
	if err != nil {
		return wireErr(op, err)
	}
	if strings.HasPrefix(st, "-ERR") {
		e := asKind(serverErr(op, mailaccess.ErrTLS, parseErr(st)), mailaccess.ErrTLS)
		if e.Err == nil {
			e.Err = errors.New("the server refused STLS")
		}
		return e
	}
	if err := d.w.StartTLS(dialopt.TLSConfig(d.o.TLSConfig, d.host)); err != nil {
		var pe *popwire.ProtocolError
		if errors.As(err, &pe) {
			// Bytes sent before the handshake: response injection.
			return mailerr.New(op, mailaccess.ErrTLS, "", err)
		}
		return wireErr(opTLSHandshake, err)
	}
	return d.capa()
}

// quoteStart quotes the start of a line that a server sent, for an error.
func quoteStart(line []byte) string {
	const max = 40
	if len(line) > max {
		return strconv.Quote(string(line[:max])) + "..."
	}
	return strconv.Quote(string(line))
}

// mailboxName is "pop3://user@host": the user escaped as URL userinfo,
// the host lower-cased (IPv6 in brackets), no port and no TLS mode.
func mailboxName(user, host string) string {
	h := strings.ToLower(host)
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return "pop3://" + url.User(user).String() + "@" + h
}

// logWarn logs err at Warn and returns it. Errors never hold a
// credential, so they can be logged whole.
func logWarn(log *slog.Logger, err error) error {
	if err != nil {
		log.Warn("pop3 error", "err", err)
	}
	return err
}
