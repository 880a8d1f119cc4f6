// Package faultproxy is a TCP proxy for tests that cuts connections at
// chosen byte offsets, in either direction, and records where the chunks
// of a clean conversation began and ended (so that a test can cut at every
// command and response boundary without knowing the protocol). RandomCut
// picks a cut from a seeded source, for randomized fault schedules that
// can be replayed.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Direction is the direction of the bytes a cut counts.
type Direction int

const (
	// Up counts bytes from the client to the server.
	Up Direction = iota
	// Down counts bytes from the server to the client.
	Down
)

// String returns "up" or "down".
func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Cut says where to cut: after At bytes have passed in direction Dir on a
// connection. A zero At with Dir Up cuts before anything is forwarded. A
// Cut applies to the first connection only unless Every is set.
type Cut struct {
	Dir   Direction
	At    int64
	Every bool
	// Stall, when set, holds the connection open without forwarding
	// anything after the cut point instead of closing it.
	Stall bool
}

// String describes the cut, such as "down@1234" or "up@10 stall".
func (c Cut) String() string {
	s := fmt.Sprintf("%s@%d", c.Dir, c.At)
	if c.Stall {
		s += " stall"
	}
	if c.Every {
		s += " every"
	}
	return s
}

// RandomCut returns a cut chosen with r: a direction with even odds among
// the directions that carry bytes, and an offset in [0, n] where n is up
// or down, the length of a clean conversation in that direction (from
// Boundaries); with probability stall (0 to 1) the cut stalls instead of
// closing. The same sequence from r gives the same cut, so that a test
// can replay a failing schedule from its seed.
func RandomCut(r *rand.Rand, up, down int64, stall float64) Cut {
	dir := Up
	switch {
	case up <= 0 && down > 0:
		dir = Down
	case up > 0 && down > 0 && r.IntN(2) == 1:
		dir = Down
	}
	n := up
	if dir == Down {
		n = down
	}
	var at int64
	if n > 0 {
		at = r.Int64N(n + 1)
	}
	return Cut{Dir: dir, At: at, Stall: r.Float64() < stall}
}

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	// Addr is the proxy's listening address, 127.0.0.1:port.
	Addr string

	target string
	ln     net.Listener
	cut    *Cut

	mu     sync.Mutex
	conns  int
	bounds [2][]int64
	open   map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
	hits   int
	done   chan struct{}
}

// New starts a proxy to target. cut may be nil (forward everything).
func New(target string, cut *Cut) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, cut: cut, open: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Boundaries returns the cumulative byte offsets at which chunks (single
// reads) ended on the first connection, per direction. For line-oriented
// protocols these are, to a close approximation, the command and response
// boundaries.
func (p *Proxy) Boundaries() (up, down []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.bounds[Up]...), append([]int64(nil), p.bounds[Down]...)
}

// Hits returns how many times the cut was performed: 0 when the
// conversations ended before reaching it.
func (p *Proxy) Hits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		close(p.done)
	}
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		n := p.conns
		p.mu.Unlock()
		p.wg.Add(1)
		go p.handle(c, n)
	}
}

func (p *Proxy) handle(client net.Conn, n int) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	var cut *Cut
	if p.cut != nil && (n == 1 || p.cut.Every) {
		cut = p.cut
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			server.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client, Up, n == 1, cut, closeBoth) }()
	go func() { defer wg.Done(); p.pipe(client, server, Down, n == 1, cut, closeBoth) }()
	wg.Wait()
	closeBoth()
}

func (p *Proxy) pipe(dst, src net.Conn, dir Direction, first bool, cut *Cut, closeBoth func()) {
	defer closeBoth()
	var total int64
	buf := make([]byte, 32<<10)
	if cut != nil && cut.Dir == dir && cut.At == 0 {
		p.hit(cut, closeBoth)
		return
	}
	for {
		nr, err := src.Read(buf)
		if nr > 0 {
			chunk := buf[:nr]
			if cut != nil && cut.Dir == dir && total+int64(nr) >= cut.At {
				keep := cut.At - total
				dst.Write(chunk[:keep])
				p.hit(cut, closeBoth)
				return
			}
			// The boundary is recorded before the chunk is forwarded, so
			// that a peer that has read it finds it in Boundaries.
			total += int64(nr)
			if first {
				p.mu.Lock()
				p.bounds[dir] = append(p.bounds[dir], total)
				p.mu.Unlock()
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
				return
			}
			return
		}
	}
}

// hit performs the cut: it closes both connections, or with Stall leaves
// them open and silent until the proxy closes.
func (p *Proxy) hit(cut *Cut, closeBoth func()) {
	p.mu.Lock()
	p.hits++
	p.mu.Unlock()
	if cut.Stall {
		<-p.done
	}
	closeBoth()
}
