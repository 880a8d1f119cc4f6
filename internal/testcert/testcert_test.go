package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// A client with ClientTLSConfig completes a handshake with a server with
// ServerTLSConfig, for 127.0.0.1 and for localhost, and trusts nothing
// else; the PEM forms parse back to the same certificate and a key.
func TestCertificate(t *testing.T) {
	c, err := New("testcert")
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("other")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	dial := func(cfg *tls.Config) error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(c.ClientTLSConfig()); err != nil {
		t.Fatalf("127.0.0.1: %v", err)
	}
	byName := c.ClientTLSConfig()
	byName.ServerName = "localhost"
	if err := dial(byName); err != nil {
		t.Fatalf("localhost: %v", err)
	}
	if err := dial(other.ClientTLSConfig()); err == nil {
		t.Fatal("a client trusting another certificate connected")
	}
	block, _ := pem.Decode(c.PEM)
	if block == nil || string(block.Bytes) != string(c.Leaf.Raw) {
		t.Fatal("PEM is not the certificate")
	}
	kp, err := c.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(c.PEM, kp); err != nil {
		t.Fatalf("key does not match: %v", err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: c.ClientTLSConfig().RootCAs, DNSName: "::1"}); err != nil {
		t.Fatalf("::1: %v", err)
	}
}
