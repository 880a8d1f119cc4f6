package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/internal/faultproxy"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
)

// dovecotDrop is alice's INBOX (and Archive) on a private Dovecot, seen
// through one protocol with implicit TLS.
type dovecotDrop struct {
	t        testing.TB
	d        *dovecottest.Server
	protocol string
}

func (x *dovecotDrop) addr() string {
	if x.protocol == "pop3" {
		return x.d.POP3SAddr
	}
	return x.d.IMAPSAddr
}

func (x *dovecotDrop) seed(msgs [][]byte) {
	x.d.Seed(x.t, user, "INBOX", msgs)
	if x.protocol == "imap" {
		x.d.Seed(x.t, user, archive, nil)
	}
}

func (x *dovecotDrop) add(m []byte) { x.d.Append(x.t, user, "INBOX", m) }
func (x *dovecotDrop) inbox() [][]byte {
	return x.d.Messages(x.t, user, "INBOX")
}
func (x *dovecotDrop) folder() [][]byte {
	if x.protocol != "imap" {
		return nil
	}
	return x.d.Messages(x.t, user, archive)
}

func (x *dovecotDrop) dial(ctx context.Context, addr string, timeout time.Duration) (mailaccess.Mailbox, error) {
	auth := mailaccess.Auth{Username: user, Password: password}
	if x.protocol == "pop3" {
		return pop.Dial(ctx, addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: auth, TLSConfig: x.d.ClientTLSConfig(), Timeout: timeout}})
	}
	return imap.Dial(ctx, addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: auth, TLSConfig: x.d.ClientTLSConfig(), Timeout: timeout}})
}

func (x *dovecotDrop) fetch(ctx context.Context, addr string, ret mailaccess.Retention, st mailaccess.State, l *ledger, timeout time.Duration, now time.Time) error {
	mb, err := x.dial(ctx, addr, timeout)
	if err != nil {
		return err
	}
	_, err = (&mailaccess.Fetcher{Retention: ret, State: st, Now: fixed(now)}).Fetch(ctx, mb, l.handle)
	return err
}

// prepare seeds the mail drop for sc, running the clean run of sc.pre.
func (x *dovecotDrop) prepare(ctx context.Context, sc scenario, st mailaccess.State, l *ledger) error {
	if len(sc.pre) == 0 {
		x.seed(sc.more)
		return nil
	}
	x.seed(sc.pre)
	if err := retry(ctx, func() error { return x.fetch(ctx, x.addr(), sc.ret, st, l, 10*time.Second, t0) }); err != nil {
		return fmt.Errorf("clean run before the faults: %w", err)
	}
	for _, m := range sc.more {
		x.add(m)
	}
	return nil
}

// randomStats sums up the schedules of one protocol.
type randomStats struct {
	schedules, faultedRuns, cuts, stalls, failedRuns, dups int
}

// lengths is the length of a clean conversation in each direction.
type lengths struct{ up, down int64 }

// TestRandomFaults runs seeded random fault schedules against a real
// Dovecot: a proxy cuts (or stalls) the TLS connection after a random
// number of bytes in a random direction, once or twice in a row,
// then a clean run with the same State finishes. UNIMAIL_FAULT_SEED=n
// replays one schedule with its log; UNIMAIL_LONG=1 runs 5000 schedules
// per protocol from a random base seed; UNIMAIL_FAULT_SCHEDULES=n sets the
// number.
func TestRandomFaults(t *testing.T) {
	n, base := 200, uint64(1)
	if long() {
		n, base = 5000, uint64(time.Now().UnixNano()%1e9)
	}
	if v := os.Getenv("UNIMAIL_FAULT_SCHEDULES"); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k > 0 {
			n = k
		}
	}
	replay := os.Getenv("UNIMAIL_FAULT_SEED")
	if replay != "" {
		s, err := strconv.ParseUint(replay, 10, 64)
		if err != nil {
			t.Fatalf("UNIMAIL_FAULT_SEED=%q: %v", replay, err)
		}
		n, base = 1, s
	}
	for _, protocol := range []string{"pop3", "imap"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			x := &dovecotDrop{t: t, d: dovecottest.Start(t, nil), protocol: protocol}
			cal := map[mailaccess.Retention]lengths{}
			for _, ret := range retentions(protocol) {
				cal[ret] = calibrate(t, x, ret)
			}
			var st randomStats
			for i := range n {
				seed := base + uint64(i)
				err := schedule(t, x, seed, cal, &st, replay != "")
				if err != nil {
					t.Fatalf("schedule seed=%d: %v\nreplay: UNIMAIL_FAULT_SEED=%d go test -race -run 'TestRandomFaults/%s' ./internal/reliability/\nDovecot log:\n%s", seed, err, seed, protocol, x.d.Log())
				}
			}
			t.Logf("%s: %d schedules (seeds %d..%d), %d faulted runs, %d cuts performed (%d stalls), %d runs failed; 0 messages lost, %d duplicates (bound 0); %v",
				protocol, st.schedules, base, base+uint64(n)-1, st.faultedRuns, st.cuts, st.stalls, st.failedRuns, st.dups, time.Since(start).Round(time.Millisecond))
		})
	}
}

// calibrate measures a clean conversation of ret through the proxy.
func calibrate(t *testing.T, x *dovecotDrop, ret mailaccess.Retention) lengths {
	ctx := t.Context()
	sc := newScenario(ret)
	l := newLedger()
	st := &watchState{State: &mailaccess.MemoryState{}, l: l}
	if err := x.prepare(ctx, sc, st, l); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(x.addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := retry(ctx, func() error { return x.fetch(ctx, p.Addr, ret, st, l, 10*time.Second, sc.at) }); err != nil {
		t.Fatalf("calibration run %s: %v", ret, err)
	}
	up, down := p.Boundaries()
	var n lengths
	if len(up) > 0 {
		n.up = up[len(up)-1]
	}
	if len(down) > 0 {
		n.down = down[len(down)-1]
	}
	return n
}

// schedule runs one seeded schedule and checks the invariant.
func schedule(t *testing.T, x *dovecotDrop, seed uint64, cal map[mailaccess.Retention]lengths, stats *randomStats, verbose bool) error {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	rets := retentions(x.protocol)
	ret := rets[r.IntN(len(rets))]
	sc := newScenario(ret)
	msgs := sc.all()
	l := newLedger()
	st := &watchState{State: &mailaccess.MemoryState{}, l: l}
	if err := x.prepare(ctx, sc, st, l); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		if verbose {
			t.Logf(format, args...)
		}
	}
	logf("seed %d: retention %s, %d messages (%d delivered before the faults)", seed, ret, len(msgs), len(sc.pre))
	stats.schedules++
	faults := 1 + r.IntN(2)
	n := cal[ret]
	for i := range faults {
		cut := faultproxy.RandomCut(r, n.up, n.down, 0.04)
		p, err := faultproxy.New(x.addr(), &cut)
		if err != nil {
			return err
		}
		ferr := x.fetch(ctx, p.Addr, ret, st, l, faultTimeout, sc.at)
		p.Close()
		stats.faultedRuns++
		if p.Hits() > 0 {
			stats.cuts++
			if cut.Stall {
				stats.stalls++
			}
		}
		if ferr != nil {
			stats.failedRuns++
		}
		logf("fault %d: cut %v (performed: %v): %v", i+1, cut, p.Hits() > 0, ferr)
		if err := settled(func() error { return checkSafe(msgs, x.inbox(), x.folder(), l) }); err != nil {
			return fmt.Errorf("after fault %d (cut %v, run: %v): %w", i+1, cut, ferr, err)
		}
	}
	err := retry(ctx, func() error { return x.fetch(ctx, x.addr(), ret, st, l, 10*time.Second, sc.at) })
	if err != nil {
		return fmt.Errorf("retention %s: clean rerun: %w", ret, err)
	}
	dups, err := checkDone(ret, msgs, x.inbox(), x.folder(), l, sc.kept, 0)
	stats.dups += dups
	if err != nil {
		return fmt.Errorf("retention %s, after the clean rerun: %w", ret, err)
	}
	logf("clean rerun: every message delivered once, the server holds what %s says", ret)
	return nil
}
