package imapconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/unimail/unimail/internal/mailerr"
)

// waitKilled waits until c has a reason, or fails.
func waitKilled(t *testing.T, c *Conn) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Reason() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the connection was not killed")
		}
		time.Sleep(time.Millisecond)
	}
	return c.Reason()
}

func TestBindKillsWhenContextEnds(t *testing.T) {
	c, _ := pipe(t)
	cause := errors.New("the caller gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	b, ok := c.Bind(ctx)
	if !ok {
		t.Fatal("Bind on a connection with no binding refused")
	}
	defer b.Unbind()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	cancel(cause)
	if err := <-done; err == nil {
		t.Fatal("Read survived the end of the bound context")
	}
	reason := waitKilled(t, c)
	if !errors.Is(reason, context.Canceled) || !errors.Is(reason, cause) {
		t.Fatalf("Reason = %v, want the context's error and cause", reason)
	}
}

func TestUnbindStopsTheContext(t *testing.T) {
	c, _ := pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	for range 3 { // the registration outlives each binding
		b, ok := c.Bind(ctx)
		if !ok {
			t.Fatal("Bind refused after Unbind")
		}
		b.Unbind()
		b.Unbind() // again: nothing
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	if c.Reason() != nil {
		t.Fatalf("a context that ended unbound killed the connection: %v", c.Reason())
	}
	// Bound again after it ended: the connection goes at once.
	b, _ := c.Bind(ctx)
	defer b.Unbind()
	if reason := waitKilled(t, c); !errors.Is(reason, context.Canceled) {
		t.Fatalf("Reason = %v, want context.Canceled", reason)
	}
}

func TestStaleUnbindKeepsNewBinding(t *testing.T) {
	c, _ := pipe(t)
	first, _ := c.Bind(context.Background())
	first.Unbind()
	ctx, cancel := context.WithCancel(context.Background())
	second, ok := c.Bind(ctx)
	if !ok {
		t.Fatal("Bind refused")
	}
	defer second.Unbind()
	first.Unbind() // stale: must not end the second binding
	cancel()
	if reason := waitKilled(t, c); !errors.Is(reason, context.Canceled) {
		t.Fatalf("Reason = %v, want context.Canceled", reason)
	}
}

func TestBindOneAtATime(t *testing.T) {
	c, _ := pipe(t)
	b, ok := c.Bind(context.Background())
	if !ok {
		t.Fatal("first Bind refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, ok := c.Bind(ctx); ok {
		t.Fatal("a second Bind while bound succeeded")
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	if c.Reason() != nil {
		t.Fatalf("the context of a refused Bind killed the connection: %v", c.Reason())
	}
	b.Unbind()
	if _, ok := c.Bind(ctx); !ok {
		t.Fatal("Bind after Unbind refused")
	}
}

func TestBindAnotherContext(t *testing.T) {
	c, _ := pipe(t)
	ctx1, cancel1 := context.WithCancel(context.Background())
	b, _ := c.Bind(ctx1)
	b.Unbind()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	b, _ = c.Bind(ctx2)
	cancel1() // its registration ended when ctx2 was bound
	time.Sleep(50 * time.Millisecond)
	if c.Reason() != nil {
		t.Fatalf("the end of a context bound before killed the connection: %v", c.Reason())
	}
	b.Unbind()
}

func TestKillEndsRegistration(t *testing.T) {
	c, _ := pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, _ := c.Bind(ctx)
	b.Unbind()
	c.Kill(errors.New("gone"))
	c.mu.Lock()
	active := c.watch.Active()
	c.mu.Unlock()
	if active {
		t.Fatal("the registration with the context outlived Kill")
	}
	b, _ = c.Bind(ctx) // registers nothing on a dead connection
	b.Unbind()
	c.mu.Lock()
	active = c.watch.Active()
	c.mu.Unlock()
	if active {
		t.Fatal("Bind after Kill registered with the context")
	}
}

func TestBindAndAlarmAllocateNothing(t *testing.T) {
	c, _ := pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, _ := c.Bind(ctx) // the first registers
	b.Unbind()
	a := c.NewAlarm()
	a.Arm(time.Hour)
	a.Disarm()
	if n := testing.AllocsPerRun(100, func() {
		b, _ := c.Bind(ctx)
		a.Arm(time.Hour)
		a.Disarm()
		b.Unbind()
	}); n != 0 {
		t.Fatalf("Bind, Arm, Disarm and Unbind allocate %v times, want 0", n)
	}
}

func TestAlarmKills(t *testing.T) {
	c, _ := pipe(t)
	a := c.NewAlarm()
	start := time.Now()
	a.Arm(50 * time.Millisecond)
	reason := waitKilled(t, c)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("killed after %v, want at least 50ms", d)
	}
	var te *mailerr.TimeoutError
	if !errors.As(reason, &te) || te.After != 50*time.Millisecond || te.Stall {
		t.Fatalf("Reason = %v, want a TimeoutError of 50ms in total", reason)
	}
}

func TestAlarmDisarmedInTime(t *testing.T) {
	c, _ := pipe(t)
	a := c.NewAlarm()
	for range 20 {
		a.Arm(time.Second)
		time.Sleep(time.Millisecond)
		a.Disarm()
	}
	a.Disarm() // not armed: nothing
	if c.Reason() != nil {
		t.Fatalf("a disarmed alarm killed: %v", c.Reason())
	}
	// Nested: the outer arming holds until its own Disarm.
	a.Arm(40 * time.Millisecond)
	a.Arm(40 * time.Millisecond)
	a.Disarm()
	waitKilled(t, c)
}

// TestAlarmLateRun runs the timer's function as a late run of an earlier
// arming would, while a later arming holds or after the last Disarm:
// neither kills.
func TestAlarmLateRun(t *testing.T) {
	c, _ := pipe(t)
	a := c.NewAlarm()
	a.Arm(time.Millisecond)
	a.Disarm()
	a.Arm(time.Hour)
	a.fire()
	a.Disarm()
	a.fire()
	if c.Reason() != nil {
		t.Fatalf("a late run of the timer killed: %v", c.Reason())
	}
}
