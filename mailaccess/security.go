package mailaccess

// Security says how a driver protects its connection. The zero value is
// implicit TLS.
type Security int

const (
	// SecurityTLS is implicit TLS from the first byte (POP3S on 995, IMAPS
	// on 993). Certificates are verified unless the caller passes its own
	// tls.Config that says otherwise.
	SecurityTLS Security = iota
	// SecurityStartTLS connects in cleartext and upgrades with STLS (POP3,
	// RFC 2595) or STARTTLS (IMAP, RFC 3501). The upgrade is required: a
	// server that does not offer it is refused with ErrTLS, never used in
	// cleartext.
	SecurityStartTLS
	// SecurityInsecureCleartext uses no TLS at all: credentials and mail
	// cross the network readable by anyone on the path. Use it only for a
	// server on the same host or in tests.
	SecurityInsecureCleartext
)

// String returns "tls", "starttls" or "insecure-cleartext".
func (s Security) String() string {
	switch s {
	case SecurityTLS:
		return "tls"
	case SecurityStartTLS:
		return "starttls"
	case SecurityInsecureCleartext:
		return "insecure-cleartext"
	}
	return "Security(?)"
}
