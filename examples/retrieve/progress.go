package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/unimail/unimail/mailaccess"
)

// terminalWidth reports whether w is a terminal and how many columns it
// has; tests replace it to draw the bar into a buffer.
var terminalWidth = func(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols <= 0 {
		cols = 80
	}
	return cols, true
}

// progressBar draws one line on a terminal: messages and bytes done, a
// bar, the transfer rate and the time left. Fetcher.Progress gives it the
// totals and the end of each message, and the handler's byte counting
// moves it within a message; a ticker redraws it a few times a second,
// and only the ticker, the start and the end draw it. It is also the
// io.Writer of the log, which it writes above the bar.
type progressBar struct {
	w     io.Writer
	width func() int
	tick  time.Duration

	mu       sync.Mutex
	p        mailaccess.Progress
	inflight int64 // bytes of the message being fetched
	active   bool
	start    time.Time
	samples  []sample // recent (time, bytes) points for the rate
	stop     chan struct{}
	stopped  chan struct{}
}

type sample struct {
	t    time.Time
	n    int64 // bytes done
	msgs int64 // messages done
}

const rateWindow = 5 * time.Second

func newProgressBar(w io.Writer, width func() int) *progressBar {
	return &progressBar{w: w, width: width, tick: 150 * time.Millisecond}
}

// update is the Fetcher's Progress callback. It draws the bar when the
// fetch starts; after that the ticker redraws it, not every message: a
// fetch of many small messages would otherwise spend its time drawing.
func (b *progressBar) update(p mailaccess.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	b.inflight = 0
	if b.active || p.Messages == 0 || p.DoneMessages > 0 {
		return
	}
	b.active = true
	b.start = time.Now()
	b.samples = []sample{{t: b.start}}
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go b.ticker(b.stop, b.stopped)
	b.drawLocked(false)
}

// add counts bytes of the message being fetched.
func (b *progressBar) add(n int) {
	b.mu.Lock()
	b.inflight += int64(n)
	b.mu.Unlock()
}

func (b *progressBar) ticker(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(b.tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.mu.Lock()
			if b.active {
				b.drawLocked(false)
			}
			b.mu.Unlock()
		}
	}
}

// finish draws the final state of the bar, if one was shown, and ends its
// line, so that what follows starts on a fresh line.
func (b *progressBar) finish() {
	b.mu.Lock()
	if !b.active {
		b.mu.Unlock()
		return
	}
	b.active = false
	stop, stopped := b.stop, b.stopped
	b.drawLocked(true)
	io.WriteString(b.w, "\n")
	b.mu.Unlock()
	close(stop)
	<-stopped
}

// Write writes p (log lines) above the bar.
func (b *progressBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return b.w.Write(p)
	}
	io.WriteString(b.w, "\r\x1b[K")
	n, err := b.w.Write(p)
	b.drawLocked(false)
	return n, err
}

func (b *progressBar) drawLocked(final bool) {
	now := time.Now()
	done := b.p.DoneBytes + b.inflight
	if len(b.samples) == 0 || now.Sub(b.samples[len(b.samples)-1].t) >= b.tick/2 {
		b.samples = append(b.samples, sample{now, done, b.p.DoneMessages})
	}
	for len(b.samples) > 2 && now.Sub(b.samples[1].t) > rateWindow {
		b.samples = b.samples[1:]
	}
	var rate, msgRate float64
	if final {
		if d := now.Sub(b.start).Seconds(); d > 0 {
			rate = float64(done) / d
		}
	} else if first := b.samples[0]; now.Sub(first.t) > 200*time.Millisecond {
		d := now.Sub(first.t).Seconds()
		rate = float64(done-first.n) / d
		msgRate = float64(b.p.DoneMessages-first.msgs) / d
	}
	line := renderBar(b.p, done, rate, eta(b.p, done, rate, msgRate), now.Sub(b.start), final, b.width())
	io.WriteString(b.w, "\r"+line+"\x1b[K")
}

// eta estimates the time left from the recent byte and message rates,
// taking the longer of the two: many small messages cost round trips
// more than bytes. It returns -1 when there is no estimate yet.
func eta(p mailaccess.Progress, doneBytes int64, rate, msgRate float64) time.Duration {
	if rate <= 0 {
		return -1
	}
	left := float64(max(p.Bytes-doneBytes, 0)) / rate
	if msgRate > 0 {
		left = max(left, float64(max(p.Messages-p.DoneMessages, 0))/msgRate)
	}
	return time.Duration(left * float64(time.Second))
}

// renderBar returns the bar's line for a terminal of cols columns, never
// wider than cols-1 (so that the terminal does not wrap it):
//
//	12/300 msgs [=====>              ]  41% 1.2 MiB/2.9 MiB 850 KiB/s ETA 2s
//
// left is the estimated time left (-1: none yet). When final, the time
// left gives way to the time taken.
func renderBar(p mailaccess.Progress, doneBytes int64, rate float64, left, elapsed time.Duration, final bool, cols int) string {
	frac := 0.0
	switch {
	case p.Bytes > 0:
		frac = float64(doneBytes) / float64(p.Bytes)
	case p.Messages > 0:
		frac = float64(p.DoneMessages) / float64(p.Messages)
	}
	if p.Messages > 0 && p.DoneMessages >= p.Messages {
		frac = 1
	}
	frac = min(max(frac, 0), 1)
	// The announced sizes may be a little off: never show 100% before the
	// last message is in.
	if frac >= 1 && p.DoneMessages < p.Messages {
		frac = 0.99
	}
	head := fmt.Sprintf("%d/%d msgs", p.DoneMessages, p.Messages)
	right := fmt.Sprintf("%3d%% %s/%s", int(frac*100), humanBytes(doneBytes), humanBytes(p.Bytes))
	if rate > 0 {
		right += " " + humanBytes(int64(rate)) + "/s"
	}
	if final {
		right += " in " + roundDuration(elapsed)
	} else if left >= 0 {
		right += " ETA " + roundDuration(left)
	} else {
		right += " ETA --"
	}
	avail := cols - 1 - len(head) - len(right) - 4 // spaces and brackets
	if avail < 10 {
		line := head + " " + right
		if len(line) > cols-1 {
			line = line[:max(cols-1, 0)]
		}
		return line
	}
	width := min(avail, 40)
	fill := int(frac * float64(width))
	var bar strings.Builder
	bar.WriteString(strings.Repeat("=", fill))
	if fill < width {
		bar.WriteString(">")
		bar.WriteString(strings.Repeat(" ", width-fill-1))
	}
	return head + " [" + bar.String() + "] " + right
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			if v < 10 {
				return fmt.Sprintf("%.1f %s", v, u)
			}
			return fmt.Sprintf("%.0f %s", v, u)
		}
	}
	return ""
}

func roundDuration(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// countingReader tells the bar about every byte read from a message.
type countingReader struct {
	r   io.Reader
	bar *progressBar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.bar.add(n)
	}
	return n, err
}
