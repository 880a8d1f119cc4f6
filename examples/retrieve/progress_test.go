package main

import (
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// The bar is drawn when the fetch starts, then by its ticker and at the
// end: not once per message.
func TestProgressBarDrawsOnTicks(t *testing.T) {
	var w syncBuffer
	b := newProgressBar(&w, func() int { return 100 })
	b.tick = 20 * time.Millisecond
	const n = 500
	b.update(mailaccess.Progress{Messages: n, Bytes: n * 10})
	for i := int64(1); i <= n; i++ {
		b.update(mailaccess.Progress{Messages: n, Bytes: n * 10, DoneMessages: i, DoneBytes: i * 10})
	}
	// One draw for the start; the ticker may have drawn a few since, but
	// far fewer than one per message.
	if draws := strings.Count(w.String(), "\r"); draws < 1 || draws > 50 {
		t.Fatalf("%d draws after %d messages: %q", draws, n, w.String())
	}
	if !strings.Contains(w.String(), "0/500 msgs") {
		t.Fatalf("the start was not drawn: %q", w.String())
	}
	// The ticker draws the latest state.
	waitFor(t, "the ticker to draw the last state", func() bool { return strings.Contains(w.String(), "500/500 msgs") })
	b.finish()
	out := w.String()
	if last := out[strings.LastIndex(out, "\r")+1:]; !strings.HasPrefix(last, "500/500 msgs") || !strings.Contains(last, " in ") || !strings.HasSuffix(last, "\x1b[K\n") {
		t.Fatalf("final state %q", last)
	}
}
