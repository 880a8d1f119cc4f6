package pop_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
	"github.com/unimail/unimail/pop/poptest"
)

// noLeak checks, when the test ends (after the cleanups registered after
// it, which stop the servers), that no goroutine was left behind.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		n := runtime.NumGoroutine()
		for n > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// hostileTimeout is the Timeout of the hostile tests, and hostileBound how
// long any of them may take to fail.
const (
	hostileTimeout = 300 * time.Millisecond
	hostileBound   = 3 * time.Second
)

// hostile starts a POP3 server on 127.0.0.1 that runs serve on each
// connection and returns Options (cleartext) that reach it. The server's
// goroutines end before the test's cleanups return.
func hostile(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *pop.Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &pop.Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: user, Password: password, Mechanism: "LOGIN"},
			Security: mailaccess.SecurityInsecureCleartext,
			Timeout:  hostileTimeout,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
			},
		},
	}
}

const hostileAddr = "127.0.0.1:110" // what Dial is given; the DialContext goes to the real server

// converse answers the commands it reads from replies (keyed by the
// command line without CRLF) until it reads one that is not there, which
// it returns; "" when the connection ended.
func converse(c net.Conn, br *bufio.Reader, replies map[string]string) string {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return ""
		}
		line = strings.TrimRight(line, "\r\n")
		r, ok := replies[line]
		if !ok {
			return line
		}
		if _, err := io.WriteString(c, r); err != nil {
			return ""
		}
	}
}

// loggedIn greets and answers CAPA, USER and PASS, then returns the first
// other command.
func loggedIn(c net.Conn, br *bufio.Reader, listing map[string]string) string {
	if _, err := io.WriteString(c, "+OK hostile\r\n"); err != nil {
		return ""
	}
	replies := map[string]string{
		"CAPA":             "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n",
		"USER " + user:     "+OK\r\n",
		"PASS " + password: "+OK\r\n",
	}
	for k, v := range listing {
		replies[k] = v
	}
	return converse(c, br, replies)
}

// trickle writes s one byte at a time, every interval, until it is written
// or the connection fails; with forever it repeats s without end.
func trickle(c net.Conn, s string, interval time.Duration, forever bool) {
	for {
		for i := range len(s) {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(interval)
		}
		if !forever {
			return
		}
	}
}

// endless writes lines of 100 octets until the connection fails.
func endless(c net.Conn) {
	chunk := bytes.Repeat([]byte(strings.Repeat("e", 98)+"\r\n"), 300)
	for {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// endlessLine writes octets without a line end until the connection
// fails.
func endlessLine(c net.Conn) {
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// listing is the listing of a mail drop with two messages of the given
// listed sizes.
func listing(sizes ...int) map[string]string {
	uidl, list := "+OK\r\n", "+OK\r\n"
	for i, s := range sizes {
		uidl += fmt.Sprintf("%d u%d\r\n", i+1, i+1)
		list += fmt.Sprintf("%d %d\r\n", i+1, s)
	}
	return map[string]string{"UIDL": uidl + ".\r\n", "LIST": list + ".\r\n"}
}

// within fails unless f returns within hostileBound, and returns its
// error. f's context ends a little after hostileBound, so that a
// regression fails rather than hangs.
func within(t *testing.T, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hostileBound+time.Second)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if d := time.Since(start); d > hostileBound {
		t.Fatalf("took %v", d)
	}
	return err
}

func TestHostileTrickledControlResponses(t *testing.T) {
	// A server that sends one byte at a time, fast enough never to trip
	// the idle deadline, cannot make a control response last beyond the
	// overall deadline.
	const every = 20 * time.Millisecond // well under hostileTimeout
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn, br *bufio.Reader)
		open  bool // the trickle is in an answer to Open, not Dial
	}{
		{"greeting", func(c net.Conn, br *bufio.Reader) {
			trickle(c, "+OK "+strings.Repeat("slow ", 1000), every, true)
		}, false},
		{"CAPA body", func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "+OK hi\r\n")
			if converse(c, br, nil) == "CAPA" {
				io.WriteString(c, "+OK\r\n")
				trickle(c, "X-SLOW\r\n", every, true)
			}
		}, false},
		{"PASS status line", func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "+OK hi\r\n")
			if converse(c, br, map[string]string{"CAPA": "-ERR\r\n", "USER " + user: "+OK\r\n"}) != "" {
				trickle(c, "+OK "+strings.Repeat("z", 8000)+"\r\n", every, false)
			}
		}, false},
		{"UIDL body", func(c net.Conn, br *bufio.Reader) {
			if loggedIn(c, br, nil) == "UIDL" {
				io.WriteString(c, "+OK\r\n")
				trickle(c, "1 a\r\n", every, true)
			}
		}, true},
		{"RETR status line", func(c net.Conn, br *bufio.Reader) {
			if loggedIn(c, br, listing(10)) != "" {
				trickle(c, "+OK "+strings.Repeat("z", 8000)+"\r\n", every, false)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			o := hostile(t, tc.serve)
			err := within(t, func(ctx context.Context) error {
				mb, err := pop.Dial(ctx, hostileAddr, o)
				if err != nil {
					return err
				}
				defer mb.Abort()
				if !tc.open {
					t.Fatal("Dial succeeded")
				}
				_, err = mb.Open(ctx, "u1")
				return err
			})
			e := wantKind(t, err, mailaccess.ErrConnection)
			te, ok := errors.AsType[*mailerr.TimeoutError](err)
			if !e.Temporary() || !ok || te.Stall {
				t.Fatalf("not a response deadline: %v", err)
			}
		})
	}
}

func TestHostileTrickledBodyIsProgress(t *testing.T) {
	// A message body is bounded by the idle deadline only: one that keeps
	// moving may take longer than the Timeout.
	noLeak(t)
	body := strings.Repeat("0123456789\r\n", 6)
	o := hostile(t, func(c net.Conn, br *bufio.Reader) {
		if loggedIn(c, br, listing(len(body))) == "RETR 1" {
			io.WriteString(c, "+OK\r\n")
			for l := range strings.Lines(body) {
				time.Sleep(hostileTimeout / 3)
				io.WriteString(c, l)
			}
			io.WriteString(c, ".\r\n")
			converse(c, br, nil)
		}
	})
	mb, err := pop.Dial(t.Context(), hostileAddr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	start := time.Now()
	got := readAll(t, mb, "u1")
	if string(got) != body {
		t.Fatalf("got %q", got)
	}
	if d := time.Since(start); d < hostileTimeout {
		t.Fatalf("the body took %v, less than the Timeout: the test proves nothing", d)
	}
}

func TestHostileEndlessBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listed int
		limit  int64 // the read must fail after at most this many octets
	}{
		{"twice the listed size plus slack", 1000, 2*1000 + 64<<10},
		{"large listed size", 512 << 10, 2*(512<<10) + 64<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			o := hostile(t, func(c net.Conn, br *bufio.Reader) {
				if loggedIn(c, br, listing(tc.listed)) == "RETR 1" {
					io.WriteString(c, "+OK\r\n")
					endless(c)
				}
			})
			mb, err := pop.Dial(t.Context(), hostileAddr, o)
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Abort()
			var n int64
			err = within(t, func(ctx context.Context) error {
				r, err := mb.Open(ctx, "u1")
				if err != nil {
					return err
				}
				n, err = io.Copy(io.Discard, r)
				return err
			})
			wantKind(t, err, mailaccess.ErrProtocol)
			if n > tc.limit {
				t.Fatalf("read %d octets, limit %d", n, tc.limit)
			}
		})
	}
}

func TestHostileEndlessBodyMemoryBounded(t *testing.T) {
	// A message announced as huge streams without bound (the size rule
	// allows it): memory stays flat however much is read.
	noLeak(t)
	o := hostile(t, func(c net.Conn, br *bufio.Reader) {
		if loggedIn(c, br, listing(1<<40)) == "RETR 1" {
			io.WriteString(c, "+OK\r\n")
			endless(c)
		}
	})
	mb, err := pop.Dial(t.Context(), hostileAddr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Abort()
	r, err := mb.Open(t.Context(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	const total = 64 << 20
	// Warm up, then measure.
	if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := io.CopyN(io.Discard, r, total); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB streamed, %d KiB allocated, heap %d -> %d KiB", total>>20, allocated>>10, before.HeapInuse>>10, after.HeapInuse>>10)
	if allocated > 1<<20 {
		t.Fatalf("%d octets allocated while streaming %d", allocated, total)
	}
	if after.HeapInuse > before.HeapInuse+4<<20 {
		t.Fatalf("heap grew from %d to %d", before.HeapInuse, after.HeapInuse)
	}
}

func TestHostileLineWithoutEnd(t *testing.T) {
	for _, phase := range []string{"greeting", "status", "listing"} {
		t.Run(phase, func(t *testing.T) {
			noLeak(t)
			o := hostile(t, func(c net.Conn, br *bufio.Reader) {
				switch phase {
				case "greeting":
					io.WriteString(c, "+OK ")
				case "status":
					if loggedIn(c, br, nil) == "" {
						return
					}
					io.WriteString(c, "+OK ")
				case "listing":
					if loggedIn(c, br, nil) == "" {
						return
					}
					io.WriteString(c, "+OK\r\n1 ")
				}
				endlessLine(c)
			})
			err := within(t, func(ctx context.Context) error {
				mb, err := pop.Dial(ctx, hostileAddr, o)
				if err != nil {
					return err
				}
				defer mb.Abort()
				_, err = mb.List(ctx)
				return err
			})
			wantKind(t, err, mailaccess.ErrProtocol)
		})
	}
}

func TestHostileGarbage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(poptest.Command) poptest.Fault
		kind  error
	}{
		{"binary greeting", func(c poptest.Command) poptest.Fault {
			if c.Seq == 0 {
				return poptest.Fault{Reply: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"}
			}
			return poptest.Fault{}
		}, mailaccess.ErrProtocol},
		{"SMTP greeting", func(c poptest.Command) poptest.Fault {
			if c.Seq == 0 {
				return poptest.Fault{Reply: "220 smtp.example.com ESMTP\r\n"}
			}
			return poptest.Fault{}
		}, mailaccess.ErrProtocol},
		{"garbage to CAPA", func(c poptest.Command) poptest.Fault {
			if c.Name == "CAPA" {
				return poptest.Fault{Reply: "* OK IMAP4rev1\r\n"}
			}
			return poptest.Fault{}
		}, mailaccess.ErrProtocol},
		{"garbage to PASS", func(c poptest.Command) poptest.Fault {
			if c.Name == "AUTH" {
				return poptest.Fault{Reply: "OK\r\n"}
			}
			return poptest.Fault{}
		}, mailaccess.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			s := setup(t, &poptest.Config{Fault: tc.fault})
			err := within(t, func(ctx context.Context) error {
				_, err := pop.Dial(ctx, s.Addr, opts(s, ""))
				return err
			})
			wantKind(t, err, tc.kind)
		})
	}
}

func TestHostileListings(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, reply string
	}{
		{"duplicate UIDL", "UIDL", "+OK\r\n1 a\r\n2 a\r\n.\r\n"},
		{"UIDL number twice", "UIDL", "+OK\r\n1 a\r\n1 b\r\n.\r\n"},
		{"UIDL number zero", "UIDL", "+OK\r\n0 a\r\n1 b\r\n.\r\n"},
		{"UIDL without uid", "UIDL", "+OK\r\n1\r\n2 b\r\n.\r\n"},
		{"UIDL with extra field", "UIDL", "+OK\r\n1 a x\r\n2 b\r\n.\r\n"},
		{"UIDL uid too long", "UIDL", "+OK\r\n1 " + strings.Repeat("u", 600) + "\r\n2 b\r\n.\r\n"},
		{"UIDL non-digit number", "UIDL", "+OK\r\n1x a\r\n2 b\r\n.\r\n"},
		{"UIDL number overflow", "UIDL", "+OK\r\n99999999999999999999 a\r\n2 b\r\n.\r\n"},
		{"LIST size overflow", "LIST", "+OK\r\n1 99999999999999999999\r\n2 3\r\n.\r\n"},
		{"LIST signed size", "LIST", "+OK\r\n1 +3\r\n2 3\r\n.\r\n"},
		{"LIST one message missing", "LIST", "+OK\r\n1 3\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == tc.cmd && len(c.Args) == 0 {
					return poptest.Fault{Reply: tc.reply}
				}
				return poptest.Fault{}
			}})
			s.AddMessage(user, []byte("a\r\n"))
			s.AddMessage(user, []byte("b\r\n"))
			mb := dial(t, s, opts(s, ""))
			_, err := mb.List(t.Context())
			wantKind(t, err, mailaccess.ErrProtocol)
			// The session is still usable (the response was read whole) or
			// fails clearly; either way nothing hangs.
			if err := within(t, func(ctx context.Context) error { return mb.Close(ctx) }); err != nil && !errors.Is(err, mailaccess.ErrConnection) {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestHostileListSizeLies(t *testing.T) {
	small := bytes.Repeat([]byte("0123456789\r\n"), 100)   // 1200 octets
	large := bytes.Repeat([]byte("0123456789\r\n"), 20000) // 240000 octets
	for _, tc := range []struct {
		name   string
		msg    []byte
		listed int
		kind   error // nil: delivered byte-exact
	}{
		{"smaller, within the slack", small, 10, nil},
		{"smaller, beyond the slack", large, 10, mailaccess.ErrProtocol},
		{"larger", small, 1 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			s := setup(t, &poptest.Config{Fault: func(c poptest.Command) poptest.Fault {
				if c.Name == "LIST" && len(c.Args) == 0 {
					return poptest.Fault{Reply: fmt.Sprintf("+OK\r\n1 %d\r\n.\r\n", tc.listed)}
				}
				return poptest.Fault{}
			}})
			uid := s.AddMessage(user, tc.msg)
			mb := dial(t, s, opts(s, ""))
			list, err := mb.List(t.Context())
			if err != nil || list[0].Size != int64(tc.listed) {
				t.Fatalf("%v, %v", list, err)
			}
			r, err := mb.Open(t.Context(), mailaccess.UID(uid))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if tc.kind == nil {
				if err != nil || !bytes.Equal(got, tc.msg) {
					t.Fatalf("%d octets, %v", len(got), err)
				}
				return
			}
			wantKind(t, err, tc.kind)
		})
	}
}

func TestHostileCloseBetweenCommands(t *testing.T) {
	for _, next := range []string{"RETR", "DELE", "QUIT"} {
		t.Run(next, func(t *testing.T) {
			noLeak(t)
			o := hostile(t, func(c net.Conn, br *bufio.Reader) {
				loggedIn(c, br, listing(3))
				// Whatever came next, close without an answer.
			})
			mb, err := pop.Dial(t.Context(), hostileAddr, o)
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Abort()
			if _, err := mb.List(t.Context()); err != nil {
				t.Fatal(err)
			}
			err = within(t, func(ctx context.Context) error {
				switch next {
				case "RETR":
					_, err := mb.Open(ctx, "u1")
					return err
				case "DELE":
					return mb.Delete(ctx, "u1")
				}
				return mb.Close(ctx)
			})
			switch next {
			case "QUIT":
				wantKind(t, err, mailaccess.ErrConnection) // nothing was marked
			default:
				e := wantKind(t, err, mailaccess.ErrConnection)
				if !e.Temporary() {
					t.Error("not temporary")
				}
			}
		})
	}
}
