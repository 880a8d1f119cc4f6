package pop_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// pipelineSetup returns a server with n small messages plus the tricky
// ones, and a Mailbox on it whose writes are counted.
func pipelineSetup(t *testing.T, cfg *poptest.Config, n int) (*poptest.Server, *pop.Mailbox, []mailaccess.MessageInfo, map[mailaccess.UID][]byte, *atomic.Int64) {
	t.Helper()
	s := setup(t, cfg)
	raws := make(map[mailaccess.UID][]byte)
	for i := range n {
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\n%s\r\n.%d\r\n", i, strings.Repeat("b", i*37), i)
		raws[mailaccess.UID(s.AddMessage(user, raw))] = raw
	}
	for _, raw := range tricky {
		raws[mailaccess.UID(s.AddMessage(user, raw))] = raw
	}
	o := opts(s, "")
	o.Security = mailaccess.SecurityInsecureCleartext
	writes := new(atomic.Int64)
	o.DialContext = countingDialer(writes)
	mb := dial(t, s, o)
	list, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, mb, list, raws, writes
}

func uidList(list []mailaccess.MessageInfo) []mailaccess.UID {
	var out []mailaccess.UID
	for _, m := range list {
		out = append(out, m.UID)
	}
	return out
}

func TestWillOpenPipelinesRETR(t *testing.T) {
	_, mb, list, raws, writes := pipelineSetup(t, nil, 200)
	mb.WillOpen(uidList(list)...)
	before := writes.Load()
	for _, m := range list {
		if got := readAll(t, mb, m.UID); !bytes.Equal(got, raws[m.UID]) {
			t.Fatalf("%s: %d bytes differ from the %d stored", m.UID, len(got), len(raws[m.UID]))
		}
	}
	// 207 RETRs, a batch of at most 64 each time half have been answered.
	if n := writes.Load() - before; n > 20 {
		t.Errorf("%d writes for %d pipelined RETRs", n, len(list))
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestWillOpenWithoutPipelining(t *testing.T) {
	for _, cfg := range []poptest.Config{{NoPipelining: true}, {Expire: "0"}} {
		_, mb, list, raws, writes := pipelineSetup(t, &cfg, 10)
		mb.WillOpen(uidList(list)...)
		before := writes.Load()
		for _, m := range list {
			if got := readAll(t, mb, m.UID); !bytes.Equal(got, raws[m.UID]) {
				t.Fatalf("%s differs", m.UID)
			}
		}
		if n := writes.Load() - before; n != int64(len(list)) {
			t.Errorf("%+v: %d writes for %d RETRs, want one each", cfg, n, len(list))
		}
	}
}

func TestWillOpenBrokenPlan(t *testing.T) {
	s, mb, list, raws, _ := pipelineSetup(t, nil, 6)
	uids := uidList(list)
	mb.WillOpen(uids[:4]...)
	if got := readAll(t, mb, uids[0]); !bytes.Equal(got, raws[uids[0]]) {
		t.Fatal("first message differs")
	}
	// Skipping one: the answers sent ahead are discarded, the right
	// message comes back.
	if got := readAll(t, mb, uids[2]); !bytes.Equal(got, raws[uids[2]]) {
		t.Fatal("third message differs")
	}
	if got := readAll(t, mb, uids[5]); !bytes.Equal(got, raws[uids[5]]) {
		t.Fatal("sixth message differs")
	}
	// A new plan, abandoned for a Delete and a List.
	mb.WillOpen(uids[1], uids[3], uids[4])
	if got := readAll(t, mb, uids[1]); !bytes.Equal(got, raws[uids[1]]) {
		t.Fatal("second message differs")
	}
	if err := mb.Delete(t.Context(), uids[1], uids[2]); err != nil {
		t.Fatal(err)
	}
	after, err := mb.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(list)-2 {
		t.Fatalf("%d listed after deleting 2 of %d", len(after), len(list))
	}
	// A plan, then Close: the answers are discarded and QUIT commits.
	mb.WillOpen(uids[3], uids[4])
	if got := readAll(t, mb, uids[3]); !bytes.Equal(got, raws[uids[3]]) {
		t.Fatal("fourth message differs")
	}
	if err := mb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	left := s.UIDs(user)
	if len(left) != len(list)-2 || slices.Contains(left, string(uids[1])) || slices.Contains(left, string(uids[2])) {
		t.Fatalf("server keeps %v", left)
	}
}

func TestWillOpenSkipsWhatOpenRefuses(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" && slices.Equal(c.Args, []string{"2"}) {
			return poptest.Fault{Err: "no such message"}
		}
		return poptest.Fault{}
	}})
	a := mailaccess.UID(s.AddMessage(user, []byte("a\r\n")))
	b := mailaccess.UID(s.AddMessage(user, []byte("b\r\n")))
	c := mailaccess.UID(s.AddMessage(user, []byte("c\r\n")))
	mb := dial(t, s, opts(s, ""))
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(a, b, c, "unknown")
	if got := readAll(t, mb, a); string(got) != "a\r\n" {
		t.Fatalf("got %q", got)
	}
	_, err := mb.Open(t.Context(), b)
	wantKind(t, err, mailaccess.ErrNotFound)
	if got := readAll(t, mb, c); string(got) != "c\r\n" {
		t.Fatalf("got %q", got)
	}
	var retrs []string
	for _, cmd := range commandsNow(s) {
		if strings.HasPrefix(cmd, "RETR") {
			retrs = append(retrs, cmd)
		}
	}
	if want := []string{"RETR 1", "RETR 2", "RETR 3"}; !slices.Equal(retrs, want) {
		t.Fatalf("RETRs %v, want %v", retrs, want)
	}
}

func TestWillOpenDropMidPipeline(t *testing.T) {
	s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
		if c.Name == "RETR" && slices.Equal(c.Args, []string{"3"}) {
			return poptest.Fault{DropAfterBytes: 10}
		}
		return poptest.Fault{}
	}})
	var uids []mailaccess.UID
	for i := range 5 {
		uids = append(uids, mailaccess.UID(s.AddMessage(user, fmt.Appendf(nil, "m%d\r\n", i))))
	}
	mb := dial(t, s, opts(s, ""))
	if _, err := mb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	mb.WillOpen(uids...)
	readAll(t, mb, uids[0])
	readAll(t, mb, uids[1])
	r, err := mb.Open(t.Context(), uids[2])
	if err == nil {
		_, err = r.Read(make([]byte, 100))
		if err == nil {
			_, err = r.Read(make([]byte, 100))
		}
	}
	wantKind(t, err, mailaccess.ErrConnection)
	_, err = mb.Open(t.Context(), uids[3])
	wantKind(t, err, mailaccess.ErrConnection)
}
