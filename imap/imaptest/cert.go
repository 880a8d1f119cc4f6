package imaptest

import "crypto/tls"

// ClientTLSConfig returns a new TLS client configuration that trusts the
// server's certificate and nothing else, with ServerName "127.0.0.1", so
// that a client can connect with certificate verification on.
func (s *Server) ClientTLSConfig() *tls.Config { return s.cert.ClientTLSConfig() }

// CertPEM returns the server's self-signed certificate, PEM-encoded, for
// clients configured with a CA file. It is valid for 127.0.0.1, ::1 and
// localhost.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.cert.PEM...) }
