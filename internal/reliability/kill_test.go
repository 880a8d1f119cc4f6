package reliability

import (
	"context"
	"fmt"
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
// holds every message, with at most one group of extra copies per kill
// (a kill between the group's renames into new/ and the state's fsync),
// and the server what the retention says. retrieve runs with groups of
// killBatch messages, so that a run has several groups and the bound
// means something.
func TestKillRetrieve(t *testing.T) {
	bin := retrieveBinary(t)
	target, msgCount := 20, 200
	if long() {
		target = 200
	}
	seed := killSeed(t)
	t.Logf("kill moments from UNIMAIL_KILL_SEED=%d", seed)
	for i, protocol := range []string{"pop3", "imap"} {
		for j, ret := range []string{"delete", "keep"} {
			t.Run(protocol+"/"+ret, func(t *testing.T) {
				t.Parallel()
				killCombo(t, bin, protocol, ret, msgCount, target, seed+uint64(2*i+j))
			})
		}
	}
}

// killBatch is retrieve's -batch in the kill tests.
const killBatch = 16

func killCombo(t *testing.T, bin, protocol, ret string, msgCount, target int, seed uint64) {
	limit := 5 * time.Minute
	if long() {
		limit = time.Hour
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit)
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

	// A clean run measures the window in which kills land: from the first
	// message in the Maildir (before it, the command starts, connects,
	// logs in and lists) to the end.
	d.Seed(t, user, "INBOX", msgs)
	cal := retrieveCmd{bin: bin, maildir: filepath.Join(dir, "cal", "Maildir"), state: filepath.Join(dir, "cal", "state"), retention: ret, url: a.url(), ca: ca, batch: killBatch}
	cmd, _, errb := cal.command(ctx)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var first time.Duration
	tick := time.NewTicker(time.Millisecond)
	for first == 0 {
		select {
		case err := <-exited:
			t.Fatalf("clean run ended before it delivered anything: %v: %s", err, errb)
		case <-tick.C:
			if filesIn(cal.maildir) > 0 {
				first = time.Since(start)
			}
		}
	}
	tick.Stop()
	if err := <-exited; err != nil {
		t.Fatalf("clean run: %v: %s\n%s", err, errb, d.Log())
	}
	window := time.Since(start)

	// Each round seeds the mail drop afresh and starts the command again
	// and again, killing it at a random moment, until a run ends by
	// itself: that is the run to completion. A moment is chosen by
	// progress, since a run takes only some tens of milliseconds: once
	// the Maildir has gained a random number of the messages still to
	// come (the last one included, so that some kills land in the
	// commit), plus a random fraction of a millisecond. One kill in eight
	// comes at a random time before the first delivery instead.
	kills, dups, rounds, midFetch := 0, 0, 0, 0
	for kills < target && rounds < 4*target {
		rounds++
		d.Seed(t, user, "INBOX", msgs)
		rc := retrieveCmd{bin: bin, maildir: filepath.Join(dir, strconv.Itoa(rounds), "Maildir"), state: filepath.Join(dir, strconv.Itoa(rounds), "state"), retention: ret, url: a.url(), ca: ca, batch: killBatch}
		roundKills := 0
		for done := false; !done; {
			if roundKills == 6 {
				if _, err := rc.complete(ctx); err != nil {
					t.Fatalf("round %d: the run after %d kills: %v\n%s", rounds, roundKills, err, d.Log())
				}
				break
			}
			before := filesIn(rc.maildir)
			stop := make(chan struct{}) // ends the progress watch
			var when string
			var moment func() <-chan time.Time
			if r.IntN(8) == 0 {
				delay := time.Duration(r.Int64N(int64(first)))
				when = fmt.Sprintf("%v after the start", delay)
				moment = func() <-chan time.Time { return time.After(delay) }
			} else {
				left := max(1, len(msgs)-before)
				goal := before + 1 + r.IntN(left)
				extra := time.Duration(r.Int64N(int64(time.Millisecond)))
				when = fmt.Sprintf("%v after message %d reached the Maildir", extra, goal)
				moment = func() <-chan time.Time {
					c := make(chan time.Time, 1)
					go func() {
						for filesIn(rc.maildir) < goal {
							select {
							case <-stop:
								return
							case <-time.After(300 * time.Microsecond):
							}
						}
						time.Sleep(extra)
						c <- time.Now()
					}()
					return c
				}
			}
			cmd, _, errb := rc.command(ctx)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err == nil {
					done = true
				} else if !strings.Contains(strings.ToLower(errb.String()), "in use") {
					t.Fatalf("round %d: the run after %d kills: %v: %s\n%s", rounds, roundKills, err, errb, d.Log())
				}
			case <-moment():
				cmd.Process.Kill()
				if err := <-exited; err == nil {
					done = true // it had just ended by itself
					break
				}
				roundKills++
				if filesIn(rc.maildir) > before {
					midFetch++
				}
				if _, err := checkMaildir(msgs, d.Messages(t, user, "INBOX"), rc.maildir, false, ret, 0); err != nil {
					t.Fatalf("round %d, after a kill %s (seed %d): %v", rounds, when, seed, err)
				}
			}
			close(stop)
		}
		n, err := checkMaildir(msgs, d.Messages(t, user, "INBOX"), rc.maildir, true, ret, roundKills*killBatch)
		if err != nil {
			t.Fatalf("round %d, %d kills (seed %d): %v", rounds, roundKills, seed, err)
		}
		kills += roundKills
		dups += n
	}
	if kills < target {
		t.Fatalf("only %d kills landed in %d rounds", kills, rounds)
	}
	t.Logf("%s %s: %d messages, clean run %v (first delivery at %v); %d rounds, %d kills (%d while delivering); 0 messages lost, %d duplicates (bound %d: a group of %d per kill)",
		protocol, ret, msgCount, window.Round(time.Millisecond), first.Round(time.Millisecond), rounds, kills, midFetch, dups, kills*killBatch, killBatch)
}

// filesIn counts the files in the Maildir's tmp/ and new/: the messages
// written so far, whether their group was published yet or not (a
// message written into tmp/ goes into new/ at the end of its group).
func filesIn(maildir string) int {
	n := 0
	for _, sub := range []string{"tmp", "new"} {
		ents, _ := os.ReadDir(filepath.Join(maildir, sub))
		n += len(ents)
	}
	return n
}
