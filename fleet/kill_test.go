package fleet_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/mailaccess"
)

// TestTwoProcessesAndAKill: two worker processes share POP3 and IMAP
// accounts while mail keeps arriving; one is killed with SIGKILL in the
// middle of its sessions. Every message of every account still arrives
// (each handler syncs it to the account's file before it returns), none
// is lost, duplicates stay within one group per session the kill cut
// short, no account is ever in two sessions at once, and the survivor
// stops cleanly.
func TestTwoProcessesAndAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	for _, db := range databases(t) {
		t.Run(db.name, func(t *testing.T) {
			const users, rounds = 12, 8
			pop, popAddr, popLogins := popServer(t, nil, "p", users, 3)
			imapSrv, imapAddr, imapLogins := imapServer(t, nil, "i", users, 3)
			out := t.TempDir()
			reg := db.open(t, nil) // registers the accounts, works none
			for i := range users {
				for _, a := range []fleet.Account{
					{ID: fmt.Sprintf("pop-%d", i), URL: fmt.Sprintf("pop3://p%d@%s", i, popAddr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: 200 * time.Millisecond},
					{ID: fmt.Sprintf("imap-%d", i), URL: fmt.Sprintf("imap://i%d@%s/INBOX", i, imapAddr), Retention: mailaccess.DeleteAfterFetch, Handler: "collect", Every: 200 * time.Millisecond},
				} {
					if err := reg.Add(t.Context(), a); err != nil {
						t.Fatal(err)
					}
				}
			}
			w1 := startWorker(t, db, out, "w1")
			w2 := startWorker(t, db, out, "w2")
			delivered := func() int {
				n := 0
				for _, m := range readAll(t, out) {
					n += len(m)
				}
				return n
			}
			add := func(r int) {
				for i := range users {
					pop.AddMessage(fmt.Sprintf("p%d", i), message(fmt.Sprintf("p%d", i), r))
					imapSrv.Append(fmt.Sprintf("i%d", i), "INBOX", message(fmt.Sprintf("i%d", i), r))
				}
			}
			for r := 3; r < rounds; r++ {
				waitFor(t, 2*time.Minute, "deliveries", func() bool { return delivered() >= 2*users*r*2/3 })
				add(r)
				if r == rounds/2 {
					// Kill w1 right after one of its handlers took a
					// message: in the middle of a session.
					n := byWorker(readAll(t, out))["w1"]
					waitFor(t, time.Minute, "w1 delivering", func() bool { return byWorker(readAll(t, out))["w1"] > n })
					w1.kill(t)
				}
			}
			waitFor(t, 4*time.Minute, "every mailbox drained by the survivor", func() bool {
				for i := range users {
					if len(pop.Messages(fmt.Sprintf("p%d", i))) > 0 || len(imapSrv.Messages(fmt.Sprintf("i%d", i), "INBOX")) > 0 {
						return false
					}
				}
				return true
			})
			w2.stop(t)
			got := readAll(t, out)
			dups := 0
			for i := range users {
				for _, acct := range []struct{ id, user string }{{fmt.Sprintf("pop-%d", i), fmt.Sprintf("p%d", i)}, {fmt.Sprintf("imap-%d", i), fmt.Sprintf("i%d", i)}} {
					seen := map[string]int{}
					for _, line := range got[acct.id] {
						id, _, _ := strings.Cut(line, "\t")
						seen[id]++
					}
					for r := range rounds {
						want := messageID(message(acct.user, r))
						if seen[want] == 0 {
							t.Errorf("%s: message %d lost", acct.id, r)
						}
						dups += max(seen[want]-1, 0)
						delete(seen, want)
					}
					if len(seen) > 0 {
						t.Errorf("%s: unexpected lines %v", acct.id, seen)
					}
				}
			}
			t.Logf("%d messages delivered, %d duplicates, by worker %v; logins: POP3 %d, IMAP %d; %d jobs rescued", 2*users*rounds, dups, byWorker(got), popLogins.Total(), imapLogins.Total(), rescued(t, db))
			if dups > killWorkers*killBatch {
				t.Errorf("%d duplicates, more than one group (%d) per session the kill cut (%d)", dups, killBatch, killWorkers)
			}
			if n := popLogins.Overlaps() + imapLogins.Overlaps(); n != 0 {
				t.Errorf("%d logins overlapped another session of the same user", n)
			}
			if popLogins.Total() < 4*users || imapLogins.Total() < 4*users {
				t.Errorf("too few cycles: %d and %d logins", popLogins.Total(), imapLogins.Total())
			}
		})
	}
}

// readAll reads the accounts' files: account ID -> lines.
func readAll(t *testing.T, dir string) map[string][]string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(e.Name(), ".log")
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				out[id] = append(out[id], l)
			}
		}
	}
	return out
}

// byWorker counts the deliveries of each worker.
func byWorker(got map[string][]string) map[string]int {
	n := map[string]int{}
	for _, lines := range got {
		for _, l := range lines {
			_, w, _ := strings.Cut(l, "\t")
			n[w]++
		}
	}
	return n
}

// rescued counts the jobs that River's rescuer took from a dead worker.
func rescued(t *testing.T, db database) int {
	q := "SELECT count(*) FROM river_job WHERE errors::text LIKE '%tuck%'"
	if db.name == "sqlite" {
		q = "SELECT count(*) FROM river_job WHERE json(errors) LIKE '%tuck%'"
	}
	var n int
	if err := db.sql(t).QueryRowContext(t.Context(), q).Scan(&n); err != nil {
		t.Logf("counting rescued jobs: %v", err)
	}
	return n
}
