package bench

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/internal/dovecottest"
)

// goIMAPAlone drains the folder at t with go-imap's client alone, over
// TLS: LOGIN, SELECT, then, when list is set, the listing the library
// makes first (UID FETCH 1:* (UID RFC822.SIZE)), then one UID FETCH 1:*
// (UID BODY.PEEK[]) whose bodies are read and discarded, and LOGOUT. It
// returns the number of messages and octets read.
func goIMAPAlone(ctx context.Context, t Target, password string, list bool) (n int, size int64, err error) {
	tc, err := t.TLSConfig()
	if err != nil {
		return 0, 0, err
	}
	c, err := imapclient.DialTLS(t.Addr, &imapclient.Options{TLSConfig: tc})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Login(t.User, password).Wait(); err != nil {
		return 0, 0, err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return 0, 0, err
	}
	all := goimap.UIDSet{{Start: 1, Stop: 0}}
	if list {
		if _, err := c.Fetch(all, &goimap.FetchOptions{UID: true, RFC822Size: true}).Collect(); err != nil {
			return 0, 0, err
		}
	}
	cmd := c.Fetch(all, &goimap.FetchOptions{UID: true, BodySection: []*goimap.FetchItemBodySection{{Peek: true}}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				k, err := io.Copy(io.Discard, bs.Literal)
				if err != nil {
					return n, size, err
				}
				n, size = n+1, size+k
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return n, size, err
	}
	return n, size, c.Logout().Wait()
}

// BenchmarkFetchIMAPLayers splits the library's distance to the raw IMAP
// client on the small profile into its layers, in one process and one
// run: each round drains the mailbox with the raw client
// (bench/rawclient), with go-imap's client alone (one UID FETCH 1:*), with
// go-imap alone after the listing the library makes first, and with the
// library (Fetcher over imap.Dial, nil State), in that order. It reports
// the median of each over the raw client's median: x-goimap, x-goimap-list
// and x-library. What x-library adds to x-goimap-list is the library's
// own; the rest is go-imap's parsing and hand-offs and the listing's round
// trip. Run it with:
//
//	go test ./bench -run '^$' -bench FetchIMAPLayers -benchtime 30x
func BenchmarkFetchIMAPLayers(b *testing.B) {
	srv := dovecottest.Start(b, nil)
	msgs := SmallMessages(SmallCount)
	srv.Seed(b, benchUser, "INBOX", msgs)
	n, size := len(msgs), TotalBytes(msgs)
	msgs = nil
	tg := target(b, srv, IMAP)
	ctx := b.Context()
	check := func(what string, gotN int, gotSize int64, err error) {
		b.Helper()
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		if gotN != n || gotSize != size {
			b.Fatalf("%s: %d messages and %d octets, want %d and %d", what, gotN, gotSize, n, size)
		}
	}
	layers := []struct {
		name string
		run  func() (int, int64, error)
	}{
		{"raw", func() (int, int64, error) {
			out, err := Raw(ctx, KindRaw, tg, benchPassword, n, 0)
			return out.Messages, out.Bytes, err
		}},
		{"goimap", func() (int, int64, error) { return goIMAPAlone(ctx, tg, benchPassword, false) }},
		{"goimap-list", func() (int, int64, error) { return goIMAPAlone(ctx, tg, benchPassword, true) }},
		{"library", func() (int, int64, error) {
			out, err := Library(ctx, tg, benchPassword, nil)
			return out.Messages, out.Bytes, err
		}},
	}
	times := make([][]time.Duration, len(layers))
	// One warm-up round: Dovecot indexes the new Maildir.
	for _, l := range layers {
		k, s, err := l.run()
		check(l.name, k, s, err)
	}
	for b.Loop() {
		for i, l := range layers {
			t0 := time.Now()
			k, s, err := l.run()
			times[i] = append(times[i], time.Since(t0))
			check(l.name, k, s, err)
		}
	}
	raw := Median(times[0])
	for i, l := range layers[1:] {
		b.ReportMetric(float64(Median(times[i+1]))/float64(raw), "x-"+l.name)
	}
	b.ReportMetric(float64(raw.Microseconds())/1000, "raw-ms")
	if testing.Verbose() {
		for i, l := range layers {
			fmt.Printf("%-12s median %v\n", l.name, Median(times[i]))
		}
	}
}
