package pop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
)

// benchMessage returns a message of about size octets with CRLF lines.
func benchMessage(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender@example.com\r\nTo: alice@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@bench.example.com>\r\n\r\n", i, i)
	line := []byte("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n")
	for b.Len()+len(line) <= size {
		b.Write(line)
	}
	return b.Bytes()
}

// benchDovecot starts Dovecot with n messages of about size octets for
// alice, or skips when Dovecot is missing.
func benchDovecot(tb testing.TB, n, size int) *dovecottest.Server {
	tb.Helper()
	srv := dovecottest.Start(tb, nil)
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = benchMessage(i, size)
	}
	srv.Seed(tb, "alice", "INBOX", raws)
	return srv
}

// rawFetch is the lower bound the driver is measured against: a POP3S
// client that logs in, sends every RETR in one write (from a second
// goroutine, so that neither side blocks on full buffers) and discards
// what comes back, then QUITs. It returns the number of messages read.
func rawFetch(ctx context.Context, addr string, cfg *tls.Config, n int) (int, error) {
	var d tls.Dialer
	d.Config = cfg
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReaderSize(c, 32<<10)
	status := func() error {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(l, []byte("+OK")) {
			return fmt.Errorf("server said %q", l)
		}
		return nil
	}
	if err := status(); err != nil {
		return 0, err
	}
	for _, cmd := range []string{"USER alice\r\n", "PASS alice-password\r\n"} {
		if _, err := io.WriteString(c, cmd); err != nil {
			return 0, err
		}
		if err := status(); err != nil {
			return 0, err
		}
	}
	var batch []byte
	for i := 1; i <= n; i++ {
		batch = append(batch, "RETR "...)
		batch = strconv.AppendInt(batch, int64(i), 10)
		batch = append(batch, '\r', '\n')
	}
	written := make(chan error, 1)
	go func() { _, err := c.Write(batch); written <- err }()
	got := 0
	for ; got < n; got++ {
		if err := status(); err != nil {
			c.Close()
			<-written
			return got, err
		}
		bol := true
		for {
			l, err := br.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				c.Close()
				<-written
				return got, err
			}
			if bol && (string(l) == ".\r\n") {
				break
			}
			bol = err == nil
		}
	}
	if err := <-written; err != nil {
		return got, err
	}
	if _, err := io.WriteString(c, "QUIT\r\n"); err != nil {
		return got, err
	}
	return got, status()
}

// driverFetch runs the Fetcher over the driver (KeepOnServer, no state,
// a handler that discards) and returns the number of messages delivered.
func driverFetch(ctx context.Context, addr string, cfg *tls.Config) (int, error) {
	mb, err := pop.Dial(ctx, addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "alice-password"},
			TLSConfig: cfg,
		},
	})
	if err != nil {
		return 0, err
	}
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer}
	rep, err := f.Fetch(ctx, mb, func(_ context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	return rep.Delivered, err
}

// BenchmarkFetch2000 compares, in the same run, the Fetcher over this
// driver, the driver alone, and the raw pipelined client, on Dovecot with
// 2000 messages of about 4 KiB. It reports the median time of each, the
// ratio of the Fetcher's median to the raw client's (ratio; the goal is at
// most 1.10) and the driver's (driver-ratio).
//
//	go test ./pop -run '^$' -bench Fetch2000 -benchtime 20x
func BenchmarkFetch2000(b *testing.B) {
	const n, size = 2000, 4 << 10
	srv := benchDovecot(b, n, size)
	cfg := srv.ClientTLSConfig()
	ctx := b.Context()
	// Warm up Dovecot's index and the page cache.
	if _, err := rawFetch(ctx, srv.POP3SAddr, cfg, n); err != nil {
		b.Fatal(err)
	}
	if _, err := driverFetch(ctx, srv.POP3SAddr, cfg); err != nil {
		b.Fatal(err)
	}
	var raw, driver, bare []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Rotate the order, so that none always runs on a server that has
		// just finished another's session.
		for j := range 3 {
			var (
				d   *[]time.Duration
				run func() (int, error)
			)
			switch (i + j) % 3 {
			case 0:
				d, run = &raw, func() (int, error) { return rawFetch(ctx, srv.POP3SAddr, cfg, n) }
			case 1:
				d, run = &driver, func() (int, error) { return driverFetch(ctx, srv.POP3SAddr, cfg) }
			default:
				d, run = &bare, func() (int, error) { return bareFetch(ctx, srv.POP3SAddr, cfg) }
			}
			start := time.Now()
			got, err := run()
			*d = append(*d, time.Since(start))
			if err != nil || got != n {
				b.Fatalf("%d messages, %v", got, err)
			}
		}
	}
	// Medians: the machine may be shared, and a median ignores the runs
	// that another process slowed down.
	r, d, m := median(raw), median(driver), median(bare)
	b.ReportMetric(float64(r.Microseconds())/1000, "raw-ms")
	b.ReportMetric(float64(d.Microseconds())/1000, "fetcher-ms")
	b.ReportMetric(float64(m.Microseconds())/1000, "driver-ms")
	b.ReportMetric(float64(d)/float64(r), "ratio")
	b.ReportMetric(float64(m)/float64(r), "driver-ratio")
}

// bareFetch does what driverFetch does without the Fetcher: List,
// WillOpen, Open and read each message, Close.
func bareFetch(ctx context.Context, addr string, cfg *tls.Config) (int, error) {
	mb, err := pop.Dial(ctx, addr, &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:      mailaccess.Auth{Username: "alice", Password: "alice-password"},
			TLSConfig: cfg,
		},
	})
	if err != nil {
		return 0, err
	}
	defer mb.Abort()
	list, err := mb.List(ctx)
	if err != nil {
		return 0, err
	}
	uids := make([]mailaccess.UID, len(list))
	for i, m := range list {
		uids[i] = m.UID
	}
	mb.WillOpen(uids...)
	for i, uid := range uids {
		r, err := mb.Open(ctx, uid)
		if err != nil {
			return i, err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return i, err
		}
		if err := r.Close(); err != nil {
			return i, err
		}
	}
	return len(uids), mb.Close(ctx)
}

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkDriverFetch2000 is the driver's half of BenchmarkFetch2000
// alone, for profiling:
//
//	go test ./pop -run '^$' -bench DriverFetch2000 -cpuprofile cpu.out
func BenchmarkDriverFetch2000(b *testing.B) {
	const n, size = 2000, 4 << 10
	srv := benchDovecot(b, n, size)
	cfg := srv.ClientTLSConfig()
	for b.Loop() {
		if got, err := driverFetch(b.Context(), srv.POP3SAddr, cfg); err != nil || got != n {
			b.Fatalf("%d messages, %v", got, err)
		}
	}
}
