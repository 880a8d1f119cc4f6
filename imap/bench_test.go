package imap_test

import (
	"context"
	"crypto/tls"
	"io"
	"sort"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

const (
	dovecotUser     = "alice"
	dovecotPassword = "alice-password"
)

// dovecotOptions returns Options for srv over implicit TLS.
func dovecotOptions(srv *dovecottest.Server) *imap.Options {
	return &imap.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: dovecotUser, Password: dovecotPassword},
			TLSConfig: srv.ClientTLSConfig(),
			Timeout:   30 * time.Second,
		},
	}
}

// rawFetchAll is the baseline: go-imap's client alone, over TLS, with one
// UID FETCH 1:* BODY.PEEK[] whose bodies are read and discarded. It
// returns the number of octets read.
func rawFetchAll(tb testing.TB, addr string, cfg *tls.Config) int64 {
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(dovecotUser, dovecotPassword).Wait(); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		tb.Fatal(err)
	}
	cmd := c.Fetch(goimap.UIDSet{{Start: 1, Stop: 0}}, &goimap.FetchOptions{
		BodySection: []*goimap.FetchItemBodySection{{Peek: true}},
	})
	var total int64
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				n, _ := io.Copy(io.Discard, bs.Literal)
				total += n
			}
		}
	}
	if err := cmd.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		tb.Fatal(err)
	}
	return total
}

// fetcherFetchAll is the same work through imap.Dial and the Fetcher, with
// a handler that discards. It returns the number of octets delivered.
func fetcherFetchAll(tb testing.TB, srv *dovecottest.Server) int64 {
	mb, err := imap.Dial(context.Background(), srv.IMAPSAddr, dovecotOptions(srv))
	if err != nil {
		tb.Fatal(err)
	}
	f := &mailaccess.Fetcher{}
	rep, err := f.Fetch(context.Background(), mb, func(ctx context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rep.Bytes
}

// BenchmarkFetchDovecot compares, in the same run, the Fetcher over this
// driver (with WillOpen's batched fetches) with a raw go-imap client that
// sends one UID FETCH 1:* BODY.PEEK[], both fetching 2000 messages of
// about 4 KiB over TLS from a private Dovecot, a whole session each. It
// reports the mean time of each and their ratio (fetcher/raw). Run it
// with:
//
//	go test ./imap -run '^$' -bench FetchDovecot -benchtime 20x
func BenchmarkFetchDovecot(b *testing.B) {
	srv := dovecottest.Start(b, nil)
	raws := make([][]byte, 2000)
	for i := range raws {
		raws[i] = message(i, 4096)
	}
	srv.Seed(b, dovecotUser, "INBOX", raws)
	cfg := srv.ClientTLSConfig()
	// Warm Dovecot's caches and indexes.
	rawFetchAll(b, srv.IMAPSAddr, cfg)
	fetcherFetchAll(b, srv)

	var rawT, fetT []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		run := func(f func()) time.Duration {
			t0 := time.Now()
			f()
			return time.Since(t0)
		}
		var rn, fn int64
		r := func() { rn = rawFetchAll(b, srv.IMAPSAddr, cfg) }
		f := func() { fn = fetcherFetchAll(b, srv) }
		if i%2 == 0 {
			rawT = append(rawT, run(r))
			fetT = append(fetT, run(f))
		} else {
			fetT = append(fetT, run(f))
			rawT = append(rawT, run(r))
		}
		if rn != fn {
			b.Fatalf("raw read %d octets, the fetcher %d", rn, fn)
		}
	}
	rm, fm := quantile(rawT, 0.5), quantile(fetT, 0.5)
	b.ReportMetric(float64(rm.Microseconds())/1000, "raw-ms")
	b.ReportMetric(float64(fm.Microseconds())/1000, "fetcher-ms")
	b.ReportMetric(float64(fm)/float64(rm), "ratio")
	// The fastest runs, which a busy machine disturbs least.
	b.ReportMetric(float64(quantile(fetT, 0))/float64(quantile(rawT, 0)), "min-ratio")
}

// quantile returns the q-quantile of d (0: the minimum, 0.5: the median).
func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}
