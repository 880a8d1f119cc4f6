package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/imap/imaptest"
)

// issue makes a certificate from tmpl, signed by parent (self-signed when
// parent is nil).
func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func leafTemplate(host string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: host},
		DNSNames:    []string{host},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// setSystemRoots replaces the system's pool for the test and counts how
// often it is asked for.
func setSystemRoots(t *testing.T, pool *x509.CertPool, err error) *int {
	old := systemRoots
	n := new(int)
	systemRoots = func() (*x509.CertPool, error) { *n++; return pool, err }
	t.Cleanup(func() { systemRoots = old })
	return n
}

// verifyServer accepts exactly what crypto/tls would accept with a pool of
// -ca's and the system's certificates, and reads the system's only when
// -ca's do not verify the chain.
func TestVerifyServer(t *testing.T) {
	root, rootKey := issue(t, caTemplate("root"), nil, nil)
	inter, interKey := issue(t, caTemplate("intermediate"), root, rootKey)
	leaf, _ := issue(t, leafTemplate("mail.example", x509.ExtKeyUsageServerAuth), inter, interKey)
	clientOnly, _ := issue(t, leafTemplate("mail.example", x509.ExtKeyUsageClientAuth), inter, interKey)
	expiredTmpl := leafTemplate("mail.example", x509.ExtKeyUsageServerAuth)
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	expired, _ := issue(t, expiredTmpl, inter, interKey)
	other, _ := issue(t, caTemplate("other"), nil, nil)

	cases := []struct {
		name    string
		chain   []*x509.Certificate
		host    string
		ca      *x509.CertPool
		sys     *x509.CertPool
		sysErr  error
		ok      bool
		sysUsed bool
		want    any // the x509 error type on failure
	}{
		{"chain to -ca", []*x509.Certificate{leaf, inter}, "mail.example", poolOf(root), nil, nil, true, false, nil},
		{"-ca holds the intermediate", []*x509.Certificate{leaf}, "mail.example", poolOf(inter), nil, nil, true, false, nil},
		{"chain to the system", []*x509.Certificate{leaf, inter}, "mail.example", poolOf(other), poolOf(root), nil, true, true, nil},
		{"wrong host", []*x509.Certificate{leaf, inter}, "other.example", poolOf(root), poolOf(root), nil, false, true, x509.HostnameError{}},
		{"intermediate missing", []*x509.Certificate{leaf}, "mail.example", poolOf(root), poolOf(), nil, false, true, x509.UnknownAuthorityError{}},
		{"expired", []*x509.Certificate{expired, inter}, "mail.example", poolOf(root), poolOf(), nil, false, true, x509.CertificateInvalidError{}},
		{"client certificate", []*x509.Certificate{clientOnly, inter}, "mail.example", poolOf(root), poolOf(), nil, false, true, x509.CertificateInvalidError{}},
		{"trusted by nobody", []*x509.Certificate{leaf, inter}, "mail.example", poolOf(other), poolOf(other), nil, false, true, x509.UnknownAuthorityError{}},
		{"no system pool", []*x509.Certificate{leaf, inter}, "mail.example", poolOf(other), nil, errors.New("no system roots"), false, true, x509.UnknownAuthorityError{}},
		{"no certificate", nil, "mail.example", poolOf(root), poolOf(root), nil, false, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			used := setSystemRoots(t, c.sys, c.sysErr)
			err := verifyServer(c.chain, c.host, c.ca)
			if (err == nil) != c.ok {
				t.Fatalf("verifyServer: %v, want ok=%v", err, c.ok)
			}
			if (*used > 0) != c.sysUsed {
				t.Errorf("system roots asked for %d times, want used=%v", *used, c.sysUsed)
			}
			if err == nil {
				return
			}
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				t.Fatalf("error %T %v, want a *tls.CertificateVerificationError", err, err)
			}
			switch c.want.(type) {
			case x509.HostnameError:
				var e x509.HostnameError
				if !errors.As(err, &e) {
					t.Errorf("error %v, want a HostnameError", err)
				}
			case x509.UnknownAuthorityError:
				var e x509.UnknownAuthorityError
				if !errors.As(err, &e) {
					t.Errorf("error %v, want an UnknownAuthorityError", err)
				}
			case x509.CertificateInvalidError:
				var e x509.CertificateInvalidError
				if !errors.As(err, &e) {
					t.Errorf("error %v, want a CertificateInvalidError", err)
				}
			}
		})
	}
}

// With -ca, a server whose certificate only the system trusts is
// accepted, and one that neither trusts is refused (exit 4).
func TestRetrieveCAOrSystem(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	unrelated := imaptest.NewTLSServer(t, nil)
	args := func() []string {
		return []string{"-maildir", filepath.Join(t.TempDir(), "Mail"), "-ca", writeCA(t, unrelated.CertPEM()), "imaps://alice@" + s.Addr}
	}
	setSystemRoots(t, poolOf(parsePEM(t, s.CertPEM())), nil)
	if code, out, errs := runRetrieve(t, password, args()...); code != exitOK || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("trusted by the system: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	setSystemRoots(t, x509.NewCertPool(), nil)
	code, out, errs := runRetrieve(t, password, args()...)
	if code != exitTLS || !strings.Contains(errs, "certificate") {
		t.Fatalf("trusted by nobody: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func parsePEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
