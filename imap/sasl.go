package imap

import (
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
)

// oauthBearerClient is SASL OAUTHBEARER (RFC 7628). Unlike go-sasl's, it
// answers an error challenge with the dummy response %x01 that section 3.2.3
// requires, so the server ends the exchange with NO instead of the client
// leaving it half-done.
type oauthBearerClient struct {
	user, token, host string
	port              int
}

var _ sasl.Client = oauthBearerClient{}

func (a oauthBearerClient) Start() (string, []byte, error) {
	var b strings.Builder
	b.WriteString("n,")
	if a.user != "" {
		b.WriteString("a=")
		// saslname escaping, RFC 5801 section 4.
		b.WriteString(strings.NewReplacer("=", "=3D", ",", "=2C").Replace(a.user))
	}
	b.WriteString(",")
	if a.host != "" {
		b.WriteString("\x01host=" + a.host)
	}
	if a.port != 0 {
		b.WriteString("\x01port=")
		b.WriteString(strconv.Itoa(a.port))
	}
	b.WriteString("\x01auth=Bearer " + a.token + "\x01\x01")
	return sasl.OAuthBearer, []byte(b.String()), nil
}

func (a oauthBearerClient) Next([]byte) ([]byte, error) { return []byte{0x01}, nil }
