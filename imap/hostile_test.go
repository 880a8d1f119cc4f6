package imap

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// The tests in this file play hostile servers: each must end in a clear
// typed error within the bounds of Options.Timeout, with memory bounded
// and no goroutine left behind.

// rawServer accepts connections on 127.0.0.1 and runs serve on each; the
// connections are closed when the test ends.
func rawServer(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// noLeak checks that the goroutines started by f are gone shortly after
// it returned, and that f allocated less than maxAlloc octets.
func noLeak(t *testing.T, maxAlloc uint64, f func()) {
	t.Helper()
	runtime.GC()
	before := runtime.NumGoroutine()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	f()
	runtime.ReadMemStats(&ms1)
	if d := ms1.TotalAlloc - ms0.TotalAlloc; d > maxAlloc {
		t.Errorf("allocated %d octets, want at most %d", d, maxAlloc)
	}
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left behind:\n%s", n-before, buf[:runtime.Stack(buf, true)])
	}
}

func dialOpts(timeout time.Duration, sec mailaccess.Security) *Options {
	return &Options{
		DialOptions: mailaccess.DialOptions{
			Auth:     mailaccess.Auth{Username: "alice", Password: scriptPassword},
			Security: sec,
			Timeout:  timeout,
		},
	}
}

func TestHostileGarbageGreeting(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		io.Copy(io.Discard, r)
	})
	for _, sec := range []mailaccess.Security{mailaccess.SecurityInsecureCleartext, mailaccess.SecurityStartTLS} {
		noLeak(t, 4<<20, func() {
			within(t, 5*time.Second, "Dial", func() {
				_, err := Dial(t.Context(), addr, dialOpts(2*time.Second, sec))
				if !errors.Is(err, mailaccess.ErrProtocol) {
					t.Errorf("security %v: Dial = %v, want ErrProtocol", sec, err)
				}
			})
		})
	}
}

func TestHostileEndlessLine(t *testing.T) {
	// Fast: a greeting that never ends, at full speed.
	addr := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		c.Write([]byte("* OK "))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	noLeak(t, 64<<20, func() {
		within(t, 10*time.Second, "Dial", func() {
			_, err := Dial(t.Context(), addr, dialOpts(5*time.Second, mailaccess.SecurityInsecureCleartext))
			if !errors.Is(err, mailaccess.ErrProtocol) {
				t.Errorf("Dial = %v, want ErrProtocol", err)
			}
		})
	})
}

// trickle sends s one octet every d, until the connection fails.
func trickle(c net.Conn, s string, d time.Duration) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(d)
	}
}

func TestHostileTrickle(t *testing.T) {
	const timeout = 300 * time.Millisecond
	endless := "* 1 FETCH (UID 7 RFC822.SIZE 5 INTERNALDATE \"01-Jan-2024 00:00:00 +0000\")" + strings.Repeat(" ", 1000)
	for _, what := range []string{"greeting", "list", "open"} {
		t.Run(what, func(t *testing.T) {
			var addr string
			if what == "greeting" {
				addr = rawServer(t, func(c net.Conn, r *bufio.Reader) {
					trickle(c, "* OK "+strings.Repeat("x", 1000)+"\r\n", 20*time.Millisecond)
				})
			} else {
				s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
					if verb != "UID FETCH" {
						return false
					}
					if what == "list" && strings.Contains(rest, "RFC822.SIZE") {
						trickle(c, endless, 20*time.Millisecond)
						return true
					}
					if what == "open" && strings.Contains(rest, "BODY.PEEK") {
						trickle(c, "* 1 FETCH (UID 7 "+strings.Repeat(" ", 1000), 20*time.Millisecond)
						return true
					}
					return false
				})
				addr = s.addr
			}
			start := time.Now()
			within(t, 5*time.Second, what, func() {
				mb, err := Dial(t.Context(), addr, dialOpts(timeout, mailaccess.SecurityInsecureCleartext))
				if what != "greeting" {
					if err != nil {
						t.Fatal(err)
					}
					defer mb.Abort()
					if what == "list" {
						_, err = mb.List(t.Context())
					} else {
						_, err = mb.Open(t.Context(), "42/7")
					}
				}
				var te interface{ Timeout() bool }
				if !errors.Is(err, mailaccess.ErrConnection) || !errors.As(err, &te) || !te.Timeout() {
					t.Errorf("%s = %v, want ErrConnection from a timeout", what, err)
				}
			})
			if d := time.Since(start); d > 3*timeout+time.Second {
				t.Errorf("%s failed after %v, want about %v", what, d, timeout)
			}
		})
	}
}

func TestHostileHugeLiterals(t *testing.T) {
	for _, what := range []string{"body", "folder name"} {
		t.Run(what, func(t *testing.T) {
			s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
				switch {
				case verb == "UID FETCH" && strings.Contains(rest, "RFC822.SIZE"):
					c.send(listAnswer)
					c.send(tag + " OK done")
				case verb == "UID FETCH":
					c.send("* 1 FETCH (UID 7 BODY[] {1000000000000}")
					c.Write([]byte(strings.Repeat("x", 1<<20)))
				case verb == "LIST":
					c.send(`* LIST () "/" {1000000000000}`)
					c.Write([]byte(strings.Repeat("x", 1<<20)))
				default:
					return false
				}
				return true
			})
			noLeak(t, 32<<20, func() {
				mb := dialScript(t, s, 5*time.Second)
				within(t, 3*time.Second, what, func() {
					var err error
					if what == "body" {
						if _, err = mb.List(t.Context()); err != nil {
							t.Fatal(err)
						}
						_, err = mb.Open(t.Context(), "42/7")
					} else {
						_, err = mb.Folders(t.Context())
					}
					if !errors.Is(err, mailaccess.ErrProtocol) {
						t.Errorf("%s = %v, want ErrProtocol", what, err)
					}
					if err := mb.Delete(t.Context(), "42/7"); !errors.Is(err, mailaccess.ErrConnection) {
						t.Errorf("Delete on the dead session = %v, want ErrConnection", err)
					}
				})
				within(t, 3*time.Second, "Abort", func() { mb.Abort() })
			})
		})
	}
}

func TestHostileUnknownUntagged(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb != "UID FETCH" {
			return false
		}
		c.send("* 3 XUNKNOWN foo")
		return true // no tagged answer: go-imap must not wait for one
	})
	noLeak(t, 4<<20, func() {
		mb := dialScript(t, s, 10*time.Second)
		within(t, 3*time.Second, "List", func() {
			_, err := mb.List(t.Context())
			if !errors.Is(err, mailaccess.ErrProtocol) || !errors.Is(err, mailaccess.ErrConnection) {
				t.Errorf("List = %v, want ErrProtocol (and ErrConnection: the session is gone)", err)
			}
		})
		mb.Abort()
	})
}

func TestHostileCloseBetweenCommands(t *testing.T) {
	s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
		if verb == "SELECT" {
			c.send("* 1 EXISTS")
			c.send("* OK [UIDVALIDITY 42] ok")
			c.send(tag + " OK [READ-WRITE] selected")
			c.Close()
			return true
		}
		return false
	})
	noLeak(t, 4<<20, func() {
		mb := dialScript(t, s, 10*time.Second)
		within(t, 3*time.Second, "List", func() {
			_, err := mb.List(t.Context())
			if !errors.Is(err, mailaccess.ErrConnection) || errors.Is(err, mailaccess.ErrProtocol) {
				t.Errorf("List = %v, want ErrConnection", err)
			}
		})
		within(t, 3*time.Second, "Close", func() {
			if err := mb.Close(t.Context()); err != nil && !errors.Is(err, mailaccess.ErrConnection) {
				t.Errorf("Close = %v", err)
			}
		})
	})
}
