package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/unimail/unimail/fleet"
	"github.com/unimail/unimail/imap/imaptest"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop/poptest"
)

// demo is the demonstration's mail: an in-process POP3 server and an
// in-process IMAP server with n users between them.
type demo struct {
	pop      *poptest.Server
	imap     *imaptest.Server
	imapAddr string
	n        int
}

func startServers(n int) (*demo, error) {
	d := &demo{pop: poptest.NewUnstartedServer(nil), imap: imaptest.NewUnstartedServer(nil), n: n}
	for i := range n {
		u := d.user(i)
		if i%2 == 0 {
			d.pop.AddUser(u, password(u))
		} else {
			d.imap.AddUser(u, password(u))
		}
		d.add(i)
	}
	d.pop.Start()
	d.imap.Start()
	d.imapAddr = d.imap.Addr
	return d, nil
}

func (d *demo) user(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("pop%d", i)
	}
	return fmt.Sprintf("imap%d", i)
}

// add delivers a new message to user i.
func (d *demo) add(i int) {
	u := d.user(i)
	m := fmt.Appendf(nil, "From: shop@example.com\r\nTo: %s@example.com\r\nSubject: order %d\r\nMessage-ID: <%d.%s@example.com>\r\n\r\nThank you for your order.\r\n",
		u, rand.N(100000), time.Now().UnixNano(), u)
	if i%2 == 0 {
		d.pop.AddMessage(u, m)
	} else {
		d.imap.Append(u, "INBOX", m)
	}
}

// register adds every demonstration account to the fleet: POP3 accounts
// deleting what they fetched, IMAP accounts pushed (IDLE) and keeping it.
func (d *demo) register(ctx context.Context, f *fleet.Fleet, every time.Duration) error {
	for i := range d.n {
		a := fleet.Account{ID: d.user(i), Handler: "count", Every: every}
		if i%2 == 0 {
			a.URL, a.Retention = "pop3://"+d.user(i)+"@"+d.pop.Addr, mailaccess.DeleteAfterFetch
		} else {
			a.URL, a.Retention, a.Push = "imap://"+d.user(i)+"@"+d.imapAddr+"/INBOX", mailaccess.KeepOnServer, true
		}
		if err := f.Add(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// deliver keeps new mail arriving, about ten messages a second, until ctx
// ends.
func (d *demo) deliver(ctx context.Context) {
	if d.n == 0 {
		return
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.add(rand.N(d.n))
		}
	}
}

func (d *demo) close() {
	d.pop.Close()
	d.imap.Close()
}
