package faultproxy

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte("echo " + line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestForwardAndBoundaries(t *testing.T) {
	p, err := New(echoServer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for _, l := range []string{"a\n", "bb\n"} {
		c.Write([]byte(l))
		got, err := r.ReadString('\n')
		if err != nil || got != "echo "+l {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	c.Close()
	up, down := p.Boundaries()
	if len(up) != 2 || up[1] != 5 || len(down) != 2 || down[1] != 15 {
		t.Fatalf("boundaries up %v down %v", up, down)
	}
}

func TestCutDown(t *testing.T) {
	p, err := New(echoServer(t), &Cut{Dir: Down, At: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	got, err := io.ReadAll(c)
	if string(got) != "ech" {
		t.Fatalf("got %q, %v; want the first 3 bytes then EOF", got, err)
	}
	// The second connection is not cut.
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("x\n"))
	line, err := bufio.NewReader(c2).ReadString('\n')
	if line != "echo x\n" {
		t.Fatalf("second connection: %q, %v", line, err)
	}
}

func TestCutUpAtZero(t *testing.T) {
	p, err := New(echoServer(t), &Cut{Dir: Up, At: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	got, _ := io.ReadAll(c)
	if len(got) != 0 {
		t.Fatalf("got %q, want nothing", got)
	}
}

func TestStall(t *testing.T) {
	p, err := New(echoServer(t), &Cut{Dir: Down, At: 2, Stall: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	buf := make([]byte, 10)
	n, _ := io.ReadAtLeast(c, buf, 2)
	if string(buf[:n]) != "ec" {
		t.Fatalf("got %q", buf[:n])
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(buf); n != 0 || err == nil {
		t.Fatalf("stalled connection gave %d bytes, %v", n, err)
	}
	p.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection still open after Close")
	}
}

func TestHits(t *testing.T) {
	p, err := New(echoServer(t), &Cut{Dir: Down, At: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	c.Write([]byte("a\n"))
	if line, err := r.ReadString('\n'); line != "echo a\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if n := p.Hits(); n != 0 {
		t.Fatalf("Hits = %d before the cut point", n)
	}
	c.Write([]byte(strings.Repeat("x", 200) + "\n"))
	if got, _ := io.ReadAll(r); len(got) != 100-7 {
		t.Fatalf("got %d bytes after the first line, want %d", len(got), 100-7)
	}
	if n := p.Hits(); n != 1 {
		t.Fatalf("Hits = %d after the cut, want 1", n)
	}
}

func TestRandomCut(t *testing.T) {
	seen := map[Direction]bool{}
	stalls := 0
	for seed := range uint64(200) {
		c := RandomCut(rand.New(rand.NewPCG(seed, 1)), 50, 1000, 0.25)
		if again := RandomCut(rand.New(rand.NewPCG(seed, 1)), 50, 1000, 0.25); again != c {
			t.Fatalf("seed %d: %v then %v", seed, c, again)
		}
		max := int64(50)
		if c.Dir == Down {
			max = 1000
		}
		if c.At < 0 || c.At > max || c.Every {
			t.Fatalf("seed %d: %v out of range", seed, c)
		}
		seen[c.Dir] = true
		if c.Stall {
			stalls++
		}
	}
	if !seen[Up] || !seen[Down] || stalls < 20 || stalls > 80 {
		t.Fatalf("directions %v, %d stalls of 200", seen, stalls)
	}
	if c := RandomCut(rand.New(rand.NewPCG(1, 1)), 0, 10, 0); c.Dir != Down {
		t.Fatalf("no bytes up: %v", c)
	}
	if got := (Cut{Dir: Up, At: 7, Stall: true}).String(); got != "up@7 stall" {
		t.Fatalf("String = %q", got)
	}
}
