package pop

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/internal/popwire"
	"github.com/unimail/unimail/internal/safetext"
	"github.com/unimail/unimail/internal/xoauth2"
	"github.com/unimail/unimail/mailaccess"
)

// checkAuth validates the credentials before anything is sent and returns
// the mechanism in upper case ("" for automatic).
func checkAuth(a mailaccess.Auth) (string, error) {
	const op = opLogin
	if err := a.Check(); err != nil {
		return "", mailerr.WithOp(op, err)
	}
	if a.Username == "" {
		return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("username is empty"))
	}
	mech := strings.ToUpper(a.Mechanism)
	switch mech {
	case mailaccess.MechAuto, mailaccess.MechLogin, mailaccess.MechPlain:
	case mailaccess.MechAPOP:
		if strings.ContainsAny(a.Username, " \t") {
			return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("APOP cannot carry a username with spaces"))
		}
	case mailaccess.MechXOAuth2, mailaccess.MechOAuthBearer:
		if a.Token == nil {
			return "", mailerr.New(op, mailaccess.ErrInvalidArgument, "", fmt.Errorf("%s needs Auth.Token", mech))
		}
	default:
		return "", mailerr.New(op, mailaccess.ErrUnsupported, "", fmt.Errorf("unknown mechanism %q", safetext.Sanitize(a.Mechanism)))
	}
	return mech, nil
}

// getToken calls the token source once.
func getToken(ctx context.Context, a mailaccess.Auth) (string, error) {
	return xoauth2.Token(ctx, opLogin, a)
}

// login authenticates with the chosen mechanism.
func (d *dialer) login() error {
	a := d.o.Auth
	mech := d.mech
	if mech == mailaccess.MechAuto {
		switch {
		case d.token != "" && d.caps.sasl(mailaccess.MechOAuthBearer):
			mech = mailaccess.MechOAuthBearer
		case d.token != "":
			mech = mailaccess.MechXOAuth2
		case d.caps.sasl(mailaccess.MechPlain):
			mech = mailaccess.MechPlain
		default:
			mech = mailaccess.MechLogin
		}
	}
	secrets := redactor{a.Password, d.token}
	var err error
	switch mech {
	case mailaccess.MechLogin:
		err = d.userPass(secrets)
	case mailaccess.MechAPOP:
		err = d.apop(secrets)
	case mailaccess.MechPlain:
		err = d.sasl(sasl.NewPlainClient("", a.Username, a.Password), secrets)
	case mailaccess.MechXOAuth2:
		err = d.sasl(xoauth2.NewClient(a.Username, d.token), secrets)
	default: // OAUTHBEARER
		err = d.sasl(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: a.Username, Token: d.token, Host: d.host, Port: d.port}), secrets)
	}
	if err == nil {
		d.log.Debug("logged in", "user", a.Username, "mechanism", mech)
	}
	return err
}

// command sends line and reads its status line; -ERR becomes an
// authentication error. Server text is cleaned of the secrets.
func (d *dialer) command(op, line string, secrets redactor) error {
	if err := d.w.WriteLine(line); err != nil {
		return wireErr(op, &redactedError{err, secrets})
	}
	st, err := d.w.ReadStatus()
	if err != nil {
		return wireErr(op, &redactedError{err, secrets})
	}
	if strings.HasPrefix(st, "-ERR") {
		return authErr(op, st, secrets)
	}
	return nil
}

// authErr turns a -ERR answer to a login command into an error: ErrAuth,
// unless a response code says otherwise (RFC 2449 section 8, RFC 3206).
func authErr(op, status string, secrets redactor) *mailaccess.Error {
	r := parseErr(secrets.clean(status))
	return serverErr(op, mailaccess.ErrAuth, r)
}

// userPass logs in with USER and PASS (RFC 1939 section 7).
func (d *dialer) userPass(secrets redactor) error {
	if err := d.command(opLogin, "USER "+d.o.Auth.Username, secrets); err != nil {
		return err
	}
	return d.command(opLogin, "PASS "+d.o.Auth.Password, secrets)
}

// apop logs in with APOP (RFC 1939 section 7).
func (d *dialer) apop(secrets redactor) error {
	const op = opLogin
	if d.timestamp == "" {
		return mailerr.New(op, mailaccess.ErrUnsupported, "", errors.New("the server's greeting has no APOP timestamp"))
	}
	sum := md5.Sum([]byte(d.timestamp + d.o.Auth.Password))
	digest := hex.EncodeToString(sum[:])
	d.w.AddSecret(digest)
	return d.command(op, "APOP "+d.o.Auth.Username+" "+digest, append(secrets, digest))
}

// maxSASLRounds bounds a SASL exchange; the mechanisms used here need one
// or two.
const maxSASLRounds = 8

// sasl runs an AUTH exchange (RFC 5034). The initial response goes into
// the AUTH line only when the whole line stays within 255 octets;
// otherwise it is sent after the server's first (empty) challenge. Both
// "+" and "+ " are accepted as continuation. A challenge that the client
// cannot answer cancels the exchange with "*" (OAUTHBEARER's error
// challenge gets the dummy response %x01 that RFC 7628 section 3.2.3 asks
// for).
func (d *dialer) sasl(c sasl.Client, secrets redactor) error {
	const op = opLogin
	mech, ir, err := c.Start()
	if err != nil {
		return mailerr.New(op, mailaccess.ErrAuth, "", &redactedError{err, secrets})
	}
	d.w.SetSASL(true)
	defer d.w.SetSASL(false)
	line := "AUTH " + mech
	var irEnc string
	pendingIR := ir != nil
	if ir != nil {
		irEnc = "="
		if len(ir) > 0 {
			irEnc = base64.StdEncoding.EncodeToString(ir)
			secrets = append(secrets, irEnc)
			d.w.AddSecret(irEnc)
		}
		if len(line)+1+len(irEnc)+2 <= popwire.MaxCommandLine {
			line += " " + irEnc
			pendingIR = false
		}
	}
	if err := d.w.WriteLine(line); err != nil {
		return wireErr(op, &redactedError{err, secrets})
	}
	for round := 0; ; round++ {
		l, err := d.w.ReadLine(popwire.MaxStatusLine)
		if err != nil {
			return wireErr(op, &redactedError{err, secrets})
		}
		s := string(l)
		switch {
		case s == "+OK" || strings.HasPrefix(s, "+OK "):
			return nil
		case s == "-ERR" || strings.HasPrefix(s, "-ERR "):
			e := authErr(op, s, secrets)
			if x, ok := c.(*xoauth2.Client); ok && x.Failure() != nil {
				e.Err = &redactedError{x.Failure(), secrets}
			}
			return e
		case s == "+" || strings.HasPrefix(s, "+ "):
		default:
			return wireErr(op, d.w.Fail(popwire.Protocolf("server answered AUTH with a line that is neither +OK, -ERR nor a continuation (%d octets)", len(l))))
		}
		if round >= maxSASLRounds {
			return d.cancelSASL(op, "*", popwire.Protocolf("SASL exchange did not end after %d rounds", maxSASLRounds), secrets)
		}
		if pendingIR {
			pendingIR = false
			resp := irEnc
			if resp == "=" {
				resp = ""
			}
			if err := d.w.WriteLine(resp); err != nil {
				return wireErr(op, &redactedError{err, secrets})
			}
			continue
		}
		chal, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(s, "+")))
		if err != nil {
			return d.cancelSASL(op, "*", popwire.Protocolf("server sent a SASL challenge that is not base64"), secrets)
		}
		resp, err := c.Next(chal)
		if err != nil {
			var obe *sasl.OAuthBearerError
			if errors.As(err, &obe) {
				return d.cancelSASL(op, "AQ==", err, secrets)
			}
			return d.cancelSASL(op, "*", err, secrets)
		}
		enc := base64.StdEncoding.EncodeToString(resp)
		if len(resp) > 0 {
			secrets = append(secrets, enc)
			d.w.AddSecret(enc)
		}
		if err := d.w.WriteLine(enc); err != nil {
			return wireErr(op, &redactedError{err, secrets})
		}
	}
}

// cancelSASL ends a SASL exchange that the client cannot continue: it
// sends cancel ("*", or the mechanism's own failure response), reads the
// server's final answer, and returns an authentication error carrying
// cause (or a protocol error when cause is one).
func (d *dialer) cancelSASL(op, cancel string, cause error, secrets redactor) error {
	if err := d.w.WriteLine(cancel); err != nil {
		return wireErr(op, &redactedError{err, secrets})
	}
	st, err := d.w.ReadStatus()
	if err != nil {
		return wireErr(op, &redactedError{err, secrets})
	}
	var pe *popwire.ProtocolError
	if errors.As(cause, &pe) {
		return mailerr.New(op, mailaccess.ErrProtocol, secrets.clean(strings.TrimPrefix(st, "-ERR")), cause)
	}
	var e *mailaccess.Error
	if strings.HasPrefix(st, "-ERR") {
		e = authErr(op, st, secrets)
	} else {
		// The server accepted the login although the client gave up: the
		// session is in an unknown state, so refuse it.
		e = mailerr.New(op, mailaccess.ErrProtocol, "", errors.New("server accepted a cancelled SASL exchange"))
	}
	e.Err = &redactedError{cause, secrets}
	return e
}
