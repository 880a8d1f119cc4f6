package imaptest

import (
	"bytes"
	"crypto/subtle"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"
	"github.com/unimail/unimail/imap/imaptest/internal/memserver"
)

// session is the imapserver.Session of one connection: memserver's
// UserSession once logged in, with our own authentication (the password
// table, PLAIN, XOAUTH2 and OAUTHBEARER) in front of it.
type session struct {
	srv  *Server
	conn *conn

	// UserSession is nil until the session is authenticated; imapserver
	// calls no other method before that.
	*memserver.UserSession
}

var (
	_ imapserver.SessionIMAP4rev2 = (*session)(nil)
	_ imapserver.SessionSASL      = (*session)(nil)
)

// newSession is imapserver's NewSession hook.
func (s *Server) newSession(ic *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc, ok := ic.NetConn().(*conn)
	if !ok {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Unexpected connection"}
	}
	return &session{srv: s, conn: nc}, nil, nil
}

// Close ends the session and, for a client connection, tells the server
// that it is gone.
func (sess *session) Close() error {
	defer sess.srv.unregister(sess.conn)
	if sess.UserSession != nil {
		return sess.UserSession.Close()
	}
	return nil
}

// Login checks the password of username.
func (sess *session) Login(username, password string) error {
	sess.srv.mu.Lock()
	u := sess.srv.users[username]
	ok := u != nil && subtle.ConstantTimeCompare([]byte(password), []byte(u.password)) == 1
	sess.srv.mu.Unlock()
	if !ok {
		return imapserver.ErrAuthFailed
	}
	sess.UserSession = memserver.NewUserSession(u.mem)
	return nil
}

// tokenLogin logs in with an OAuth bearer token. name, if not empty, is
// the user the client claims to be and must be the token's user.
func (sess *session) tokenLogin(name, token string) bool {
	sess.srv.mu.Lock()
	owner, ok := sess.srv.tokens[token]
	sess.srv.mu.Unlock()
	if !ok || (name != "" && name != owner) {
		return false
	}
	u := sess.srv.lookupUser(owner)
	if u == nil {
		return false
	}
	sess.UserSession = memserver.NewUserSession(u.mem)
	return true
}

// AuthenticateMechanisms lists the SASL mechanisms offered as AUTH=.
func (sess *session) AuthenticateMechanisms() []string {
	mechs := []string{"PLAIN"}
	sess.srv.mu.Lock()
	if len(sess.srv.tokens) > 0 {
		mechs = append(mechs, "XOAUTH2", sasl.OAuthBearer)
	}
	sess.srv.mu.Unlock()
	return mechs
}

// Authenticate returns the SASL server for mech.
func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	srv, err := sess.saslServer(mech)
	if err != nil {
		return nil, err
	}
	return emptyChallenge{srv}, nil
}

func (sess *session) saslServer(mech string) (sasl.Server, error) {
	for _, m := range sess.AuthenticateMechanisms() {
		if !strings.EqualFold(m, mech) {
			continue
		}
		switch m {
		case "PLAIN":
			return sasl.NewPlainServer(func(identity, username, password string) error {
				if identity != "" && identity != username {
					return &imap.Error{
						Type: imap.StatusResponseTypeNo,
						Code: imap.ResponseCodeAuthorizationFailed,
						Text: "SASL identity not supported",
					}
				}
				return sess.Login(username, password)
			}), nil
		case "XOAUTH2":
			return &xoauth2Server{sess: sess}, nil
		case sasl.OAuthBearer:
			ob := &oauthBearerServer{}
			ob.inner = sasl.NewOAuthBearerServer(func(opts sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
				if !sess.tokenLogin(opts.Username, opts.Token) {
					return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
				}
				return nil
			})
			return ob, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// xoauth2Failure is the challenge that reports a refused XOAUTH2 token,
// in the form Gmail uses; the client answers it with an empty response.
const xoauth2Failure = `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`

// xoauth2Server is the server side of XOAUTH2: one response,
// "user=" user ^A "auth=Bearer " token ^A ^A. A refused one gets a JSON
// challenge, then NO [AUTHENTICATIONFAILED] whatever the client answers.
type xoauth2Server struct {
	sess   *session
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, false, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return nil, false, nil // no SASL-IR: ask for the response
	}
	if name, token, ok := parseXOAUTH2(resp); ok && x.sess.tokenLogin(name, token) {
		return nil, true, nil
	}
	x.failed = true
	return []byte(xoauth2Failure), false, nil
}

// parseXOAUTH2 splits an XOAUTH2 response into its user and token.
func parseXOAUTH2(resp []byte) (name, token string, ok bool) {
	rest, found := bytes.CutSuffix(resp, []byte("\x01\x01"))
	if !found {
		return "", "", false
	}
	fields := bytes.Split(rest, []byte{1})
	for _, f := range fields {
		k, v, found := bytes.Cut(f, []byte{'='})
		if !found {
			return "", "", false
		}
		switch string(k) {
		case "user":
			name = string(v)
		case "auth":
			t, found := strings.CutPrefix(string(v), "Bearer ")
			if !found {
				return "", "", false
			}
			token = t
		}
	}
	return name, token, name != "" && token != ""
}

// oauthBearerServer wraps go-sasl's OAUTHBEARER server so that a refused
// token ends in NO [AUTHENTICATIONFAILED] whatever the client answers to
// the error challenge (RFC 7628 wants ^A; go-sasl's server fails on an
// empty answer, and its error is not an IMAP one).
type oauthBearerServer struct {
	inner  sasl.Server
	failed bool
}

func (o *oauthBearerServer) Next(resp []byte) ([]byte, bool, error) {
	if o.failed {
		return nil, false, imapserver.ErrAuthFailed
	}
	challenge, done, err := o.inner.Next(resp)
	if err != nil {
		return nil, false, imapserver.ErrAuthFailed
	}
	if !done && len(challenge) > 0 {
		o.failed = true // the JSON error challenge
	}
	return challenge, done, nil
}

// emptyChallenge makes an empty SASL challenge go out as "+ " (RFC 9051
// section 6.2.2). imapserver would send "+ =", which clients read as a
// challenge to answer rather than as the request for the initial response.
type emptyChallenge struct{ sasl.Server }

func (e emptyChallenge) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := e.Server.Next(resp)
	if len(challenge) == 0 {
		challenge = nil
	}
	return challenge, done, err
}
