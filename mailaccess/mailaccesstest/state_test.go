package mailaccesstest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// brokenEnv names the flaw that TestBrokenStateHelper gives its State.
const brokenEnv = "UNIMAIL_BROKEN_STATE"

// broken is a MemoryState with one flaw, to show that the suite sees it.
type broken struct {
	*mailaccess.MemoryState
	flaw string
}

func (b *broken) mailbox(mb string) string {
	if b.flaw == "case-folding" {
		return strings.ToLower(mb)
	}
	return mb
}

func (b *broken) Records(ctx context.Context, mb string) ([]mailaccess.Record, error) {
	return b.MemoryState.Records(ctx, b.mailbox(mb))
}

func (b *broken) Put(ctx context.Context, mb string, recs ...mailaccess.Record) error {
	mb = b.mailbox(mb)
	switch b.flaw {
	case "microseconds", "no-copied-to":
		out := make([]mailaccess.Record, len(recs))
		for i, r := range recs {
			if b.flaw == "microseconds" {
				r.Delivered = r.Delivered.Truncate(time.Microsecond)
			} else {
				r.CopiedTo = ""
			}
			out[i] = r
		}
		recs = out
	case "first-wins":
		seen := map[mailaccess.UID]bool{}
		var out []mailaccess.Record
		for _, r := range recs {
			if !seen[r.UID] {
				seen[r.UID] = true
				out = append(out, r)
			}
		}
		recs = out
	case "half-batch":
		// Stores the first half, then waits a little and stops if the
		// context ended meanwhile: every cancellation of the suite that
		// comes during the call leaves half a batch, whatever the load.
		half := len(recs) / 2
		if err := b.MemoryState.Put(ctx, mb, recs[:half]...); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		recs = recs[half:]
	}
	return b.MemoryState.Put(ctx, mb, recs...)
}

func (b *broken) Forget(ctx context.Context, mb string, uids ...mailaccess.UID) error {
	mb = b.mailbox(mb)
	if b.flaw == "forget-like" {
		// Treats % as a wildcard, as a careless SQL LIKE would.
		recs, _ := b.MemoryState.Records(ctx, mb)
		for _, u := range uids {
			if u == "%" {
				for _, r := range recs {
					uids = append(uids, r.UID)
				}
			}
		}
	}
	return b.MemoryState.Forget(ctx, mb, uids...)
}

func (b *broken) Mark(ctx context.Context, mb string) (mailaccess.UID, error) {
	if b.flaw == "one-mark" {
		mb = ""
	}
	return b.MemoryState.Mark(ctx, b.mailbox(mb))
}

func (b *broken) SetMark(ctx context.Context, mb string, uid mailaccess.UID) error {
	if b.flaw == "one-mark" {
		mb = ""
	}
	return b.MemoryState.SetMark(ctx, b.mailbox(mb), uid)
}

func (b *broken) Count(ctx context.Context, mb, epoch string) (int, int, error) {
	total, in, err := b.MemoryState.Count(ctx, b.mailbox(mb), epoch)
	if b.flaw == "count-ignores-epoch" {
		in = total
	}
	return total, in, err
}

func (b *broken) Lookup(ctx context.Context, mb string, uids ...mailaccess.UID) ([]mailaccess.Record, error) {
	if b.flaw == "lookup-first-only" && len(uids) > 1 {
		uids = uids[:1]
	}
	return b.MemoryState.Lookup(ctx, b.mailbox(mb), uids...)
}

// TestBrokenStateHelper runs the suite on a State with the flaw that
// brokenEnv names; TestStateSuiteCatchesFlaws runs it in a child process
// and expects it to fail.
func TestBrokenStateHelper(t *testing.T) {
	flaw := os.Getenv(brokenEnv)
	if flaw == "" {
		t.Skip("run by TestStateSuiteCatchesFlaws")
	}
	var opts *mailaccesstest.StateOptions
	if flaw == "forgets-on-reopen" {
		opts = &mailaccesstest.StateOptions{Reopen: func(t *testing.T, s mailaccess.State) mailaccess.State {
			return &broken{MemoryState: &mailaccess.MemoryState{}}
		}}
	}
	mailaccesstest.TestState(t, func(t *testing.T) mailaccess.State {
		return &broken{MemoryState: &mailaccess.MemoryState{}, flaw: flaw}
	}, opts)
}

// TestStateSuiteCatchesFlaws: the suite fails a State with any one of
// these flaws, in the subtest that checks for it.
func TestStateSuiteCatchesFlaws(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for flaw, subtest := range map[string]string{
		"microseconds":        "RoundTrip",
		"no-copied-to":        "RoundTrip",
		"first-wins":          "PutReplaces",
		"case-folding":        "Mailboxes",
		"forget-like":         "OddUIDs",
		"one-mark":            "Mailboxes",
		"count-ignores-epoch": "Count",
		"lookup-first-only":   "Lookup",
		"forgets-on-reopen":   "Reopen",
		"half-batch":          "CancelledPut",
	} {
		t.Run(flaw, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe, "-test.run=^TestBrokenStateHelper$/^"+subtest+"$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a State whose flaw is %s:\n%s", flaw, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenStateHelper/"+subtest) {
				t.Fatalf("the flaw %s did not fail subtest %s:\n%s", flaw, subtest, out)
			}
		})
	}
}
