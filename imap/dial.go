package imap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"maps"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/unimail/unimail/internal/dialopt"
	"github.com/unimail/unimail/internal/imapconn"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/internal/xoauth2"
	"github.com/unimail/unimail/mailaccess"
)

// Dial connects to the IMAP server at addr ("host:port", or "host" for the
// default port of opts.Security: 993, or 143 with STARTTLS or cleartext),
// protects the connection as opts.Security says, logs in and selects
// opts.Folder read-write.
//
// ctx bounds the whole call; opts.DialTimeout bounds the TCP connection and
// opts.Timeout each command. User, password and folder are checked for CR,
// LF and NUL (ErrInvalidArgument) before anything is sent. Errors: ErrTLS
// (handshake, certificate, STARTTLS refused), ErrAuth (credentials or
// mechanism refused; the password never appears in the error),
// ErrUnavailable (a login refused with [UNAVAILABLE]), ErrInUse,
// ErrNotFound (the folder does not exist), ErrConnection (the connection
// failed or timed out, or ctx ended). On every error the *Mailbox is nil.
func Dial(ctx context.Context, addr string, opts *Options) (*Mailbox, error) {
	return dial(ctx, addr, opts, true)
}

// dial is Dial; without sel it logs in but selects no folder (the session
// of an Account).
func dial(ctx context.Context, addr string, opts *Options, sel bool) (*Mailbox, error) {
	o := opts.withDefaults()
	if err := checkOptions(&o); err != nil {
		return nil, err
	}
	host, port, err := splitAddr(addr, o.Security)
	if err != nil {
		return nil, mailerr.New(opConnect, mailaccess.ErrInvalidArgument, "", err)
	}
	m := &Mailbox{
		opts:        o,
		name:        mailboxName(o.Auth.Username, host, o.Folder),
		changed:     make(chan struct{}, 1),
		strays:      new(atomic.Int64),
		arrivals:    new(atomic.Bool),
		litFailed:   new(atomic.Bool),
		marks:       make(map[imap.UID]struct{}),
		idleRestart: idleRestartInterval,
		secrets:     []string{o.Auth.Password},
		tracer:      newTracer(o.Trace, o.Auth.Password),
		log:         o.Logger.With("mailbox", mailboxName(o.Auth.Username, host, o.Folder)),
	}

	raw, err := dialopt.Dial(ctx, &o.DialOptions, "imap", net.JoinHostPort(host, port))
	if err != nil {
		m.log.Warn("imap dial failed", "err", err)
		return nil, err
	}
	m.conn = imapconn.New(raw)
	m.total, m.ctl = m.conn.NewAlarm(), m.conn.NewAlarm()
	m.host = host
	if err := m.open(ctx, host, sel); err != nil {
		m.log.Warn("imap dial failed", "err", err)
		m.conn.Kill(errSessionClosed)
		if m.client != nil {
			m.client.Close()
		}
		return nil, err
	}
	return m, nil
}

// checkOptions checks what Dial was given before anything is sent.
func checkOptions(o *Options) error {
	if err := o.Auth.Check(); err != nil {
		return mailerr.WithOp(opLogin, err)
	}
	if err := mailerr.CheckArg("folder", o.Folder); err != nil {
		return mailerr.WithOp(opSelect, err)
	}
	mech := strings.ToUpper(o.Auth.Mechanism)
	switch mech {
	case mailaccess.MechAuto, mailaccess.MechLogin, mailaccess.MechPlain:
		if o.Auth.Token != nil && mech != mailaccess.MechAuto {
			return mailerr.New(opLogin, mailaccess.ErrInvalidArgument, "", errors.New("a token needs mechanism XOAUTH2 or OAUTHBEARER"))
		}
	case mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer:
		if o.Auth.Token == nil {
			return mailerr.New(opLogin, mailaccess.ErrInvalidArgument, "", errors.New("mechanism "+mech+" needs Auth.Token"))
		}
	default:
		return mailerr.New(opLogin, mailaccess.ErrUnsupported, "", errors.New("IMAP has no login mechanism "+safetext.Sanitize(o.Auth.Mechanism)))
	}
	o.Auth.Mechanism = mech
	switch o.Security {
	case mailaccess.SecurityTLS, mailaccess.SecurityStartTLS, mailaccess.SecurityInsecureCleartext:
	default:
		return mailerr.New(opConnect, mailaccess.ErrInvalidArgument, "", errors.New("unknown Security value"))
	}
	return nil
}

// splitAddr splits addr into host and port, adding the default port.
func splitAddr(addr string, sec mailaccess.Security) (host, port string, err error) {
	if err := mailerr.CheckArg("address", addr); err != nil {
		return "", "", errors.New("address contains CR, LF or NUL")
	}
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		// No port: the whole address is the host.
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "993"
		if sec != mailaccess.SecurityTLS {
			port = "143"
		}
	}
	if host == "" {
		return "", "", errors.New("address has no host")
	}
	return host, port, nil
}

// mailboxName builds "imap://user@host/folder": the user escaped as URL
// userinfo, the host lower-cased without the port, the folder
// path-escaped.
func mailboxName(user, host, folder string) string {
	h := strings.ToLower(host)
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	u := url.User(user).String()
	if u != "" {
		u += "@"
	}
	return "imap://" + u + h + "/" + url.PathEscape(folder)
}

// open protects the connection, logs in and selects the folder.
func (m *Mailbox) open(ctx context.Context, host string, sel bool) error {
	o := &m.opts
	copts := &imapclient.Options{UnilateralDataHandler: m.unilateralHandler()}
	m.log.Debug("imap connect", "addr", m.conn.RemoteAddr().String(), "security", o.Security.String())

	switch o.Security {
	case mailaccess.SecurityTLS:
		cfg := dialopt.TLSConfig(o.TLSConfig, host)
		if cfg.NextProtos == nil {
			cfg.NextProtos = []string{"imap"}
		}
		tc := tls.Client(m.conn, cfg)
		g := m.begin(ctx, boundTotal)
		// Bounded by the guard, which records why it ended the
		// handshake (HandshakeContext would race it).
		err := tc.Handshake()
		g.end()
		if err != nil {
			return m.tlsError(opTLSHandshake, err)
		}
		m.wire = m.newWire(tc)
	case mailaccess.SecurityStartTLS:
		g := m.begin(ctx, boundTotal)
		tc, err := m.startTLS(dialopt.TLSConfig(o.TLSConfig, host))
		g.end()
		if err != nil {
			return err
		}
		// The server sends no second greeting after STARTTLS: go-imap,
		// which waits for one, is given a stand-in (without capabilities,
		// so that it asks for them anew).
		m.wire = m.newWire(tc)
		m.client = imapclient.New(&greetedConn{Conn: m.wire, pre: []byte("* OK TLS is on\r\n")}, copts)
	default:
		m.wire = m.newWire(m.conn)
	}

	g := m.begin(ctx, boundTotal)
	var err error
	if m.client == nil {
		var seen []byte
		if seen, err = peekGreeting(m.wire); err == nil {
			m.client = imapclient.New(&greetedConn{Conn: m.wire, pre: seen}, copts)
		}
	}
	if err == nil {
		err = m.client.WaitGreeting()
	}
	g.end()
	if err != nil {
		return m.fail(opGreeting, err, func(*imap.Error) error { return mailaccess.ErrServer })
	}
	if m.client.State() == imap.ConnStateNotAuthenticated {
		if err := m.login(ctx); err != nil {
			return err
		}
	}
	if err := m.capabilities(ctx); err != nil {
		return err
	}
	if !sel {
		return nil
	}
	return m.selectFolder(ctx)
}

// peekGreeting reads the server's first line, one octet at a time, and
// returns the octets read, for go-imap to read again. A BYE greeting is
// returned as the *imap.Error that go-imap would make of it: go-imap's
// WaitGreeting may report one as "connection closed before greeting",
// since its reader closes the connection right after a BYE greeting and
// WaitGreeting then picks either event at random. Everything else (an OK
// or PREAUTH greeting, garbage, a read error) is left to go-imap.
func peekGreeting(r io.Reader) ([]byte, error) {
	var line []byte
	one := make([]byte, 1)
	for len(line) < maxPreTLSLine {
		if _, err := io.ReadFull(r, one); err != nil {
			return line, nil // go-imap meets the same error
		}
		line = append(line, one[0])
		if one[0] == '\n' {
			break
		}
	}
	kind, text := statusOf(strings.TrimRight(string(line), "\r\n"), "*")
	if kind != "BYE" {
		return line, nil
	}
	e := &imap.Error{Type: imap.StatusResponseTypeBye, Text: text}
	if rest, ok := strings.CutPrefix(text, "["); ok {
		if code, after, ok := strings.Cut(rest, "]"); ok {
			name, _, _ := strings.Cut(code, " ")
			e.Code, e.Text = imap.ResponseCode(strings.ToUpper(name)), strings.TrimSpace(after)
		}
	}
	return line, e
}

// greetedConn is the connection with what was read of it before go-imap
// took over (the greeting, or a stand-in after STARTTLS) in front of what
// the server sends next.
type greetedConn struct {
	net.Conn
	pre []byte // not yet read again
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// maxPreTLSLine bounds the lines read before STARTTLS.
const maxPreTLSLine = 8 << 10

// startTLS reads the greeting, sends STARTTLS (RFC 3501 section 6.2.1)
// and makes the TLS handshake. It reads one octet at a time, so that
// nothing the server sent after its OK is read as cleartext: such bytes
// go into the handshake, which then fails. The exchange is in the trace.
func (m *Mailbox) startTLS(cfg *tls.Config) (*tls.Conn, error) {
	const op = opStartTLS
	w := m.newWire(m.conn)
	readLine := func() (string, error) {
		var b []byte
		one := make([]byte, 1)
		for len(b) < maxPreTLSLine {
			if _, err := io.ReadFull(w, one); err != nil {
				return "", err
			}
			if one[0] == '\n' {
				return strings.TrimRight(string(b), "\r"), nil
			}
			b = append(b, one[0])
		}
		return "", errors.New("a line longer than " + strconv.Itoa(maxPreTLSLine) + " octets before STARTTLS")
	}
	lost := func(err error) error {
		if reason := m.conn.Reason(); reason != nil {
			return m.connError(op, reason)
		}
		if w.failed() == nil {
			v := &protocolViolation{err: err}
			m.conn.Kill(v)
			return m.violationError(op, v)
		}
		m.conn.Kill(err)
		return m.connError(op, m.conn.Reason())
	}
	greeting, err := readLine()
	if err != nil {
		return nil, lost(err)
	}
	kind, text := statusOf(greeting, "*")
	switch kind {
	case "OK":
	case "PREAUTH":
		return nil, mailerr.New(op, mailaccess.ErrTLS, "", errors.New("the server sent PREAUTH on the cleartext connection"))
	case "BYE":
		return nil, mailerr.New(opGreeting, mailaccess.ErrServer, m.scrub(text), nil)
	default:
		return nil, lost(errors.New("the server's greeting is not an IMAP greeting"))
	}
	if _, err := io.WriteString(w, "S1 STARTTLS\r\n"); err != nil {
		return nil, lost(err)
	}
	for lines := 0; ; lines++ {
		l, err := readLine()
		if err != nil {
			return nil, lost(err)
		}
		if lines > 100 {
			return nil, lost(errors.New("no answer to STARTTLS in 100 lines"))
		}
		kind, text := statusOf(l, "S1")
		switch kind {
		case "":
			continue // untagged data
		case "OK":
		case "NO", "BAD":
			return nil, mailerr.New(op, mailaccess.ErrTLS, m.scrub(text), errors.New("the server refused STARTTLS"))
		default:
			return nil, lost(errors.New("the server's answer to STARTTLS is not an IMAP status"))
		}
		break
	}
	tc := tls.Client(m.conn, cfg)
	if err := tc.Handshake(); err != nil { // bounded by the caller's guard
		return nil, m.tlsError(opTLSHandshake, err)
	}
	return tc, nil
}

// statusOf parses "<tag> <status> <text>" for the given tag ("*" for
// untagged): status is upper-cased, "" when line has another tag.
func statusOf(line, tag string) (status, text string) {
	t, rest, _ := strings.Cut(line, " ")
	if t != tag {
		return "", ""
	}
	s, text, _ := strings.Cut(rest, " ")
	return strings.ToUpper(s), text
}

// tlsError maps a failure of the TLS handshake or of STARTTLS: a
// cancellation, a timeout or a transport failure is ErrConnection; a
// refusal of STARTTLS, a certificate problem or a failed handshake is
// ErrTLS.
func (m *Mailbox) tlsError(op string, err error) error {
	if reason := m.conn.Reason(); reason != nil {
		return m.connError(op, reason)
	}
	var (
		ie   *imap.Error
		cve  *tls.CertificateVerificationError
		ae   tls.AlertError
		rhe  tls.RecordHeaderError
		uae  x509.UnknownAuthorityError
		hne  x509.HostnameError
		cie  x509.CertificateInvalidError
		oper *net.OpError
	)
	switch {
	case errors.As(err, &ie):
		return mailerr.New(op, mailaccess.ErrTLS, m.scrub(mailerr.ServerText(string(ie.Code), ie.Text)), errors.New("the server refused STARTTLS"))
	case errors.As(err, &cve), errors.As(err, &ae), errors.As(err, &rhe),
		errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &cie):
		return mailerr.New(op, mailaccess.ErrTLS, "", err)
	case strings.Contains(err.Error(), "PREAUTH"):
		return mailerr.New(op, mailaccess.ErrTLS, "", errors.New("the server sent PREAUTH on the cleartext connection"))
	case errors.As(err, &oper):
		m.conn.Kill(err)
		return m.connError(op, err)
	}
	if op == opTLSHandshake {
		return mailerr.New(op, mailaccess.ErrTLS, "", transportCause(err))
	}
	m.conn.Kill(transportCause(err))
	return m.connError(op, m.conn.Reason())
}

// login authenticates as Options.Auth says. Any failure of AUTHENTICATE
// closes the connection (go-imap does not cancel an exchange whose SASL
// step failed, so the connection may be out of step).
func (m *Mailbox) login(ctx context.Context) error {
	const op = opLogin
	a := &m.opts.Auth
	g := m.begin(ctx, boundTotal)
	caps := m.client.Caps()
	g.end()
	if caps == nil {
		return m.capsError(op)
	}
	m.preLogin = caps

	mech := a.Mechanism
	if mech == mailaccess.MechAuto {
		switch {
		case a.Token != nil && caps.Has("AUTH=OAUTHBEARER"):
			mech = mailaccess.MechOAuthBearer
		case a.Token != nil:
			mech = mailaccess.MechXOAuth2
		case caps.Has("AUTH=PLAIN"):
			mech = mailaccess.MechPlain
		default:
			mech = mailaccess.MechLogin
		}
	}

	var sc sasl.Client
	switch mech {
	case mailaccess.MechLogin:
		if caps.Has(imap.CapLoginDisabled) {
			return mailerr.New(op, mailaccess.ErrAuth, "", errors.New("the server announces LOGINDISABLED on this connection"))
		}
		g := m.begin(ctx, boundTotal)
		err := m.client.Login(a.Username, a.Password).Wait()
		g.end()
		if err == nil {
			m.log.Debug("imap login", "user", a.Username, "mechanism", mech)
		}
		return m.fail(op, err, loginKind)
	case mailaccess.MechPlain:
		sc = sasl.NewPlainClient("", a.Username, a.Password)
	case mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer:
		tok, err := xoauth2.Token(ctx, op, *a)
		if err != nil {
			return err
		}
		if strings.ContainsAny(a.Username, "\x01") {
			return mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("username contains a control character"))
		}
		m.secrets = append(m.secrets, tok)
		m.tracer.addSecret(tok)
		if mech == mailaccess.MechXOAuth2 {
			sc = xoauth2.NewClient(a.Username, tok)
		} else {
			sc = oauthBearerClient{user: a.Username, token: tok}
		}
	}

	g = m.begin(ctx, boundTotal)
	err := m.client.Authenticate(sc)
	g.end()
	if err == nil {
		m.log.Debug("imap login", "user", a.Username, "mechanism", mech)
		return nil
	}
	// Whatever happened, the connection may be out of step: end it.
	reason := m.conn.Reason()
	m.conn.Kill(errors.New("authentication failed"))
	if reason != nil {
		return m.connError(op, reason)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return m.serverError(op, loginKind(ie), ie)
	}
	return mailerr.New(op, mailaccess.ErrAuth, "", errors.New("the authentication exchange failed"))
}

// loginKind maps a NO or BAD to LOGIN or AUTHENTICATE.
func loginKind(ie *imap.Error) error {
	switch ie.Code {
	case imap.ResponseCodeUnavailable:
		return mailaccess.ErrUnavailable
	case imap.ResponseCodeInUse:
		return mailaccess.ErrInUse
	case imap.ResponseCodePrivacyRequired:
		return mailaccess.ErrTLS
	}
	return mailaccess.ErrAuth
}

// capsError is the error when the capabilities could not be had.
func (m *Mailbox) capsError(op string) error {
	if reason := m.conn.Reason(); reason != nil {
		return m.connError(op, reason)
	}
	m.conn.Kill(errors.New("no CAPABILITY answer"))
	return m.connError(op, m.conn.Reason())
}

// capabilities records the capabilities after login. Most servers send
// them in the tagged OK of the login ([CAPABILITY ...]), which go-imap
// records before the login command returns: they are taken from there,
// without a round trip. Otherwise (no such code, or a set equal to the one
// before login, which go-imap may not have reset yet when the login
// returns) it asks with an explicit CAPABILITY.
func (m *Mailbox) capabilities(ctx context.Context) error {
	g := m.begin(ctx, boundTotal)
	if caps := m.client.Caps(); len(caps) > 0 && !maps.Equal(caps, m.preLogin) {
		g.end()
		m.setCaps(caps)
		return nil
	}
	caps, err := m.client.Capability().Wait()
	if err == nil && len(caps) == 0 {
		// Capabilities sent only as a response code of the tagged OK.
		caps = m.client.Caps()
	}
	g.end()
	if err != nil {
		return m.fail(opSelect, err, nil)
	}
	m.setCaps(caps)
	return nil
}

// setCaps records the session's capabilities.
func (m *Mailbox) setCaps(caps imap.CapSet) {
	m.caps = caps
	m.capList = m.capList[:0]
	for c := range caps {
		m.capList = append(m.capList, string(c))
	}
	sort.Strings(m.capList)
}

// selectFolder selects the folder read-write and records its UIDVALIDITY.
func (m *Mailbox) selectFolder(ctx context.Context) error {
	const op = opSelect
	g := m.begin(ctx, boundTotal)
	data, err := m.client.Select(m.opts.Folder, nil).Wait()
	g.end()
	if err != nil {
		return m.fail(op, err, nil)
	}
	if data.UIDValidity == 0 {
		m.conn.Kill(errors.New("no UIDVALIDITY"))
		return mailerr.New(op, mailaccess.ErrProtocol, "", errors.New("the server sent no UIDVALIDITY for the folder"))
	}
	m.uidValidity = data.UIDValidity
	m.uidNext = data.UIDNext
	m.selectCount = data.NumMessages
	m.log.Debug("imap selected", "folder", m.opts.Folder, "uidvalidity", data.UIDValidity, "uidnext", uint32(data.UIDNext), "messages", data.NumMessages)
	return nil
}
