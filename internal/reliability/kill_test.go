package reliability

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
)

// killSeed returns the seed of the kill delays: UNIMAIL_KILL_SEED, or one
// from the clock (logged, to replay a failure).
func killSeed(t *testing.T) uint64 {
	if v := os.Getenv("UNIMAIL_KILL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("UNIMAIL_KILL_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano() % 1e9)
}

// TestKillRetrieve runs examples/retrieve against Dovecot (POP3S and
// IMAPS, retentions delete and keep), kills it with SIGKILL at random
// moments of its fetch, and runs it again to completion: the Maildir then
// holds every message, with at most one extra copy per kill (a kill
// between the Maildir rename and the state's fsync), and the server what
// the retention says.
func TestKillRetrieve(t *testing.T) {
	bin := retrieveBinary(t)
	target, msgCount := 20, 200
	if long() {
		target = 200
	}
	seed := killSeed(t)
	t.Logf("kill delays from UNIMAIL_KILL_SEED=%d", seed)
	for i, protocol := range []string{"pop3", "imap"} {
		for j, ret := range []string{"delete", "keep"} {
			t.Run(protocol+"/"+ret, func(t *testing.T) {
				t.Parallel()
				killCombo(t, bin, protocol, ret, msgCount, target, seed+uint64(2*i+j))
			})
		}
	}
}

func killCombo(t *testing.T, bin, protocol, ret string, msgCount, target int, seed uint64) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	d := dovecottest.Start(t, nil)
	dir := fastDir(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, d.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &account{d: d, user: user, protocol: protocol, ca: ca}
	r := rand.New(rand.NewPCG(seed, 0x6b111))
	msgs := corpus(msgCount, "kill-"+protocol+"-"+ret)

	// A clean run measures the window in which kills land.
	d.Seed(t, user, "INBOX", msgs)
	cal := retrieveCmd{bin: bin, maildir: filepath.Join(dir, "cal", "Maildir"), state: filepath.Join(dir, "cal", "state"), retention: ret, url: a.url(), ca: ca}
	start := time.Now()
	if _, err := cal.complete(ctx); err != nil {
		t.Fatalf("clean run: %v\n%s", err, d.Log())
	}
	window := time.Since(start)

	// Each round seeds the mail drop afresh and starts the command again
	// and again, killing it after a random delay within the window, until
	// a run ends by itself: that is the run to completion.
	kills, dups, rounds, midFetch := 0, 0, 0, 0
	for kills < target && rounds < 4*target {
		rounds++
		d.Seed(t, user, "INBOX", msgs)
		rc := retrieveCmd{bin: bin, maildir: filepath.Join(dir, strconv.Itoa(rounds), "Maildir"), state: filepath.Join(dir, strconv.Itoa(rounds), "state"), retention: ret, url: a.url(), ca: ca}
		roundKills := 0
		for done := false; !done; {
			if roundKills == 6 {
				if _, err := rc.complete(ctx); err != nil {
					t.Fatalf("round %d: the run after %d kills: %v\n%s", rounds, roundKills, err, d.Log())
				}
				break
			}
			before := filesIn(rc.maildir)
			cmd, _, errb := rc.command(ctx)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			delay := time.Duration(r.Int64N(int64(window)))
			timer := time.NewTimer(delay)
			select {
			case err := <-exited:
				if err == nil {
					done = true
				} else if !strings.Contains(strings.ToLower(errb.String()), "in use") {
					t.Fatalf("round %d: the run after %d kills: %v: %s\n%s", rounds, roundKills, err, errb, d.Log())
				}
			case <-timer.C:
				cmd.Process.Kill()
				<-exited
				roundKills++
				if filesIn(rc.maildir) > before {
					midFetch++
				}
				if _, err := checkMaildir(msgs, d.Messages(t, user, "INBOX"), rc.maildir, false, ret, 0); err != nil {
					t.Fatalf("round %d, after a kill %v into the run (seed %d): %v", rounds, delay, seed, err)
				}
			}
			timer.Stop()
		}
		n, err := checkMaildir(msgs, d.Messages(t, user, "INBOX"), rc.maildir, true, ret, roundKills)
		if err != nil {
			t.Fatalf("round %d, %d kills (seed %d): %v", rounds, roundKills, seed, err)
		}
		kills += roundKills
		dups += n
	}
	if kills < target {
		t.Fatalf("only %d kills landed in %d rounds", kills, rounds)
	}
	t.Logf("%s %s: %d messages, clean run %v; %d rounds, %d kills (%d while delivering); 0 messages lost, %d duplicates (bound %d)",
		protocol, ret, msgCount, window.Round(time.Millisecond), rounds, kills, midFetch, dups, kills)
}

// filesIn counts the files in the Maildir's new/.
func filesIn(maildir string) int {
	ents, _ := os.ReadDir(filepath.Join(maildir, "new"))
	return len(ents)
}
