package e2e

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

// Fetcher.Run on Dovecot: new mail delivered while Run waits in IDLE
// reaches the handler within a second.
func TestRunPushDovecot(t *testing.T) {
	d := dovecottest.Start(t, nil)
	d.Seed(t, user, "INBOX", [][]byte{mailaccesstest.Message(1)})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan time.Time, 10)
	done := make(chan error, 1)
	f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
	armed := make(chan bool, 10)
	go func() {
		done <- f.Run(ctx, func(ctx context.Context) (mailaccess.Mailbox, error) {
			return dialWay(ctx, d, imapS, d.IMAPSAddr, "INBOX")
		}, func(ctx context.Context, m *mailaccess.Message) error {
			got <- time.Now()
			return nil
		}, &mailaccess.RunOptions{Interval: time.Hour, Waiting: func(_ string, push bool) { armed <- push }})
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the first message never came")
	}
	var lat []time.Duration
	for i := range 5 {
		// Deliver once Run says Dovecot acknowledged IDLE.
		select {
		case push := <-armed:
			if !push {
				t.Fatal("Waiting says poll on a Dovecot with IDLE")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no Waiting signal before message %d", i)
		}
		sent := time.Now()
		d.Append(t, user, "INBOX", mailaccesstest.Message(10+i))
		select {
		case at := <-got:
			lat = append(lat, at.Sub(sent))
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not pushed within 5s", i)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("push latency (append to handler) over IDLE on Dovecot: min %v, median %v, max %v", lat[0], lat[len(lat)/2], lat[len(lat)-1])
	if lat[len(lat)/2] > time.Second {
		t.Fatalf("median push latency %v, want under a second", lat[len(lat)/2])
	}
}
