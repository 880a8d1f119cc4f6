// Package testcert makes the self-signed certificates of the project's
// test servers (pop/poptest, imap/imaptest, internal/dovecottest).
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// Cert is a self-signed ECDSA P-256 certificate that is its own CA, for
// server authentication, valid for 127.0.0.1, ::1 and localhost.
type Cert struct {
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// PEM is the certificate, PEM-encoded, for clients that read a CA
	// file.
	PEM []byte
	key *ecdsa.PrivateKey
}

// New makes a certificate with name as its common name and organization.
// It is valid from 1970 to 2100, like net/http/httptest's, so that
// testing/synctest's fake clock (year 2000) accepts it too.
func New(name string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{name}},
		NotBefore:             time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{Leaf: leaf, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// KeyPEM returns the private key, PKCS #8 and PEM-encoded.
func (c *Cert) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ServerTLSConfig returns a new server configuration that presents the
// certificate (TLS 1.2 at least).
func (c *Cert) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{c.Leaf.Raw}, PrivateKey: c.key, Leaf: c.Leaf}},
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLSConfig returns a new client configuration that trusts the
// certificate and nothing else, with ServerName "127.0.0.1", so that a
// client connects with verification on.
func (c *Cert) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
