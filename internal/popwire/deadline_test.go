package popwire

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
)

func TestResponseDeadlineBeatsTrickle(t *testing.T) {
	// One byte every 10 ms never trips a 100 ms idle deadline, but a status
	// line must be whole within 100 ms.
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		for {
			if _, err := server.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	w := New(client, 100*time.Millisecond)
	start := time.Now()
	_, err := w.ReadStatus()
	var ne net.Error
	te, ok := errors.AsType[*mailerr.TimeoutError](err)
	if !errors.As(err, &ne) || !ne.Timeout() || !ok || te.Stall || err.Error() != "timed out after 100ms" {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestResponseDeadlineGrowsWithData(t *testing.T) {
	// A large listing may take several idle periods, as long as it moves
	// at least 64 KiB per period. (A period of 300 ms leaves a loaded
	// machine room to move 80 KiB through a pipe.)
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	const idle = 300 * time.Millisecond
	line := strings.Repeat("1 x\r\n", 1<<14) // 80 KiB
	go func() {
		for range 4 {
			if _, err := server.Write([]byte(line)); err != nil {
				return
			}
			time.Sleep(idle / 2)
		}
		_, _ = server.Write([]byte(".\r\n"))
	}()
	w := New(client, idle)
	start := time.Now()
	lines, err := w.ReadMultiline(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4<<14 {
		t.Fatalf("%d lines", len(lines))
	}
	if time.Since(start) < idle {
		t.Fatal("the listing took less than one idle period: the test proves nothing")
	}
}

func TestBodyDeadlineIsProgress(t *testing.T) {
	// A message body that keeps moving is not cut by the response
	// deadline, however long it takes.
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	const idle = 100 * time.Millisecond
	go func() {
		_, _ = server.Write([]byte("+OK\r\n"))
		for range 10 {
			time.Sleep(idle / 3)
			if _, err := server.Write([]byte("line\r\n")); err != nil {
				return
			}
		}
		_, _ = server.Write([]byte(".\r\n"))
	}()
	w := New(client, idle)
	w.BeginResponse()
	if _, err := w.ReadStatus(); err != nil {
		t.Fatal(err)
	}
	r := w.DotReader(1<<20, "test")
	buf := make([]byte, 100)
	n := 0
	for {
		m, err := r.Read(buf)
		n += m
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	if n != 60 {
		t.Fatalf("%d octets", n)
	}
}

func TestIdleDeadlineWithinExtendedResponse(t *testing.T) {
	// A listing that has earned a long overall deadline still fails on the
	// idle deadline when it stops moving. The period is long enough that
	// a loaded machine moves 200 KiB through a pipe well within the
	// overall deadline it earns (five periods).
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	const idle = 500 * time.Millisecond
	go func() {
		_, _ = server.Write([]byte(strings.Repeat("1 x\r\n", 40<<10))) // 200 KiB: four more periods
		_, _ = io.Copy(io.Discard, server)
	}()
	w := New(client, idle)
	_, err := w.ReadMultiline(1<<30, 1<<30)
	if te, ok := errors.AsType[*mailerr.TimeoutError](err); !ok || !te.Stall {
		t.Fatalf("got %v", err)
	}
}
