package pop

import (
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
		mb, err := Dial(t.Context(), s.Addr, &Options{Auth: mailaccess.Auth{Username: "alice", Password: "pw"}, TLSConfig: s.ClientTLSConfig(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := mb.Describe().LoginDelay; got != time.Duration(delay)*time.Second {
			t.Errorf("LOGIN-DELAY %d: Describe says %v", delay, got)
		}
		mb.Close(t.Context())
	}
}
