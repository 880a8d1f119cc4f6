package pop

import (
	"slices"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// LOGIN-DELAY reaches the Description, for Fetcher.Run to honour.
func TestDescribeLoginDelay(t *testing.T) {
	for _, delay := range []int{0, 300} {
		s := poptest.NewTLSServer(t, &poptest.Config{LoginDelay: delay})
		s.AddUser("alice", "pw")
		mb, err := Dial(t.Context(), s.Addr, &Options{DialOptions: mailaccess.DialOptions{Auth: mailaccess.Auth{Username: "alice", Password: "pw"}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if got := mb.Describe().LoginDelay; got != time.Duration(delay)*time.Second {
			t.Errorf("LOGIN-DELAY %d: Describe says %v", delay, got)
		}
		mb.Close(t.Context())
	}
}

// SASL names that no mechanism can have (RFC 4422 section 3.1) are
// dropped: they could never be chosen, and Unicode case folding would
// make them match in surprising ways.
func TestParseCapsSASLNames(t *testing.T) {
	c := parseCaps([]string{"SASL PLAIN X-\u00dcBER xoauth2 SCRAM-SHA-256 MECHANISM-NAME-TOO-LONG \u0130"})
	if got, want := c.args["SASL"], []string{"PLAIN", "xoauth2", "SCRAM-SHA-256"}; !slices.Equal(got, want) {
		t.Fatalf("SASL = %q, want %q", got, want)
	}
	if !c.sasl("XOAUTH2") || c.sasl("i") {
		t.Fatal("case-insensitive match of the kept names")
	}
}
