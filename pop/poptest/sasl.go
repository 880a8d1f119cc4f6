package poptest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
)

// The JSON error challenges sent before failing an OAuth exchange: the
// XOAUTH2 one follows Google's documentation, the OAUTHBEARER one RFC 7628
// section 3.2.2.
const (
	xoauth2Error     = `{"status":"401","schemes":"bearer","scope":"pop"}`
	oauthBearerError = `{"status":"invalid_token","schemes":"bearer","scope":"pop"}`
)

var implementedMechs = []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}

// cmdAUTH runs an RFC 5034 AUTH exchange.
func (c *session) cmdAUTH(args []string) {
	c.userArg = ""
	if len(args) < 1 || len(args) > 2 {
		c.err("", "AUTH needs a mechanism and at most one initial response")
		return
	}
	mech := strings.ToUpper(args[0])
	if !slices.Contains(c.s.mechs, mech) || !slices.Contains(implementedMechs, mech) {
		c.err("", "unsupported authentication mechanism")
		return
	}
	var resp []byte
	if len(args) == 2 {
		var err error
		if resp, err = decodeResponse(args[1]); err != nil {
			c.err("", "invalid base64 in initial response")
			return
		}
	} else {
		text, ok := c.challenge("")
		if !ok {
			return
		}
		if text == "*" {
			c.err("", "authentication cancelled")
			return
		}
		var err error
		if resp, err = decodeResponse(text); err != nil {
			c.err("", "invalid base64 in response")
			return
		}
	}
	var user string
	var ok bool
	switch mech {
	case "PLAIN":
		user, ok = c.checkPlain(resp)
		if !ok {
			c.authFailed()
			return
		}
	case "XOAUTH2":
		user, ok = c.checkXOAUTH2(resp)
		if !ok {
			c.oauthFailed(xoauth2Error)
			return
		}
	case "OAUTHBEARER":
		user, ok = c.checkOAuthBearer(resp)
		if !ok {
			c.oauthFailed(oauthBearerError)
			return
		}
	}
	c.login(user)
}

// challenge sends "+ " and the base64 of data, and reads the client's
// response line (CRLF removed). If it returns false, the reply (-ERR) is
// written or the connection is dead (c.out.err is set).
func (c *session) challenge(data string) (string, bool) {
	if _, err := c.bw.WriteString("+ " + base64.StdEncoding.EncodeToString([]byte(data)) + "\r\n"); err != nil {
		c.out.err = err
		return "", false
	}
	if err := c.bw.Flush(); err != nil {
		c.out.err = err
		return "", false
	}
	line, err := c.readLine(MaxSASLLineLength)
	switch {
	case errors.Is(err, errTooLong):
		c.err("", "line too long")
		return "", false
	case err != nil:
		c.out.err = err
		return "", false
	}
	if bad := checkLine(line); bad != "" {
		c.err("", bad)
		return "", false
	}
	return string(line[:len(line)-2]), true
}

// decodeResponse decodes a base64 client response; "=" is an empty one
// (RFC 5034 section 4).
func decodeResponse(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// oauthFailed sends the JSON error challenge, reads the client's response
// (expected to be empty, "AQ==" or "*", but anything goes) and fails with
// [AUTH], as Gmail and RFC 7628 section 3.2.3 do.
func (c *session) oauthFailed(json string) {
	if _, ok := c.challenge(json); ok {
		c.authFailed()
	}
}

// checkPlain verifies an RFC 4616 PLAIN response: authzid NUL authcid NUL
// passwd. An authzid other than the authcid (proxy login) is refused.
func (c *session) checkPlain(resp []byte) (string, bool) {
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return "", false
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		return "", false
	}
	pw, ok := c.s.password(user)
	return user, ok && pw == pass
}

// checkXOAUTH2 verifies "user=" USER ^A "auth=Bearer " TOKEN ^A ^A.
func (c *session) checkXOAUTH2(resp []byte) (string, bool) {
	rest, ok := bytes.CutSuffix(resp, []byte("\x01\x01"))
	if !ok {
		return "", false
	}
	var user, token string
	var haveUser, haveToken bool
	for _, kv := range strings.Split(string(rest), "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "user":
			user, haveUser = v, true
		case "auth":
			token, haveToken = bearer(v)
		}
	}
	if !haveUser || !haveToken {
		return "", false
	}
	owner, ok := c.s.tokenUser(token)
	return user, ok && owner == user
}

// checkOAuthBearer verifies an RFC 7628 OAUTHBEARER client response:
// gs2-header ("n,a=user," or "n,,") then ^A-separated key=value pairs, one
// of them "auth=Bearer TOKEN", ending in ^A ^A.
func (c *session) checkOAuthBearer(resp []byte) (string, bool) {
	s := string(resp)
	flag, s, ok := strings.Cut(s, ",")
	if !ok || flag != "n" && flag != "y" {
		return "", false
	}
	authz, s, ok := strings.Cut(s, ",")
	if !ok {
		return "", false
	}
	var user string
	if authz != "" {
		name, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return "", false
		}
		if user, ok = saslName(name); !ok {
			return "", false
		}
	}
	s, ok = strings.CutPrefix(s, "\x01")
	if !ok {
		return "", false
	}
	s, ok = strings.CutSuffix(s, "\x01\x01")
	if !ok {
		return "", false
	}
	var token string
	var haveToken bool
	for _, kv := range strings.Split(s, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", false
		}
		if k == "auth" {
			token, haveToken = bearer(v)
		}
	}
	if !haveToken {
		return "", false
	}
	owner, ok := c.s.tokenUser(token)
	if !ok || user != "" && user != owner {
		return "", false
	}
	return owner, true
}

// bearer returns the token of an "auth" value "Bearer TOKEN" (the scheme
// is case-insensitive).
func bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// saslName decodes an RFC 5801 saslname: "=2C" is ",", "=3D" is "=", and
// any other "=" is invalid.
func saslName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '=')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		s = s[i+3:]
	}
	return b.String(), true
}
