package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/unimail/unimail/imap/imaptest"
)

// -ca trusts exactly its certificates: the server's own CA is accepted,
// another one is refused with exit 4 (TLS), and nothing is delivered.
func TestRetrieveCA(t *testing.T) {
	s := imaptest.NewTLSServer(t, nil)
	s.AddUser("alice", password)
	s.SetMessages("alice", "INBOX", testMessages())
	unrelated := imaptest.NewTLSServer(t, nil)

	md := filepath.Join(t.TempDir(), "Mail")
	code, out, errs := runRetrieve(t, password, "-maildir", md, "-ca", writeCA(t, unrelated.CertPEM()), "imaps://alice@"+s.Addr)
	if code != exitTLS || !strings.Contains(errs, "certificate") {
		t.Fatalf("a CA that did not sign the server's certificate: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runRetrieve(t, password, "-maildir", md, "-ca", writeCA(t, s.CertPEM()), "imaps://alice@"+s.Addr)
	if code != exitOK || !strings.HasPrefix(out, "delivered=3 ") {
		t.Fatalf("the server's CA: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
