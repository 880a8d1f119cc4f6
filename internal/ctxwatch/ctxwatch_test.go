package ctxwatch

import (
	"context"
	"testing"
	"time"
)

// One registration serves every context of one Done channel; another
// channel replaces it; the callback gets the channel of the context that
// ended; Ended and Stop forget it.
func TestWatch(t *testing.T) {
	ended := make(chan (<-chan struct{}), 4)
	w := &Watch{OnEnd: func(done <-chan struct{}) { ended <- done }}
	if w.Watch(context.Background()) != nil || w.Active() {
		t.Fatal("a context that never ends was registered")
	}
	a, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	if w.Watch(a) != nil || !w.Active() {
		t.Fatal("first registration")
	}
	if w.Watch(a) != nil {
		t.Fatal("the same context registered twice")
	}
	if n := testing.AllocsPerRun(100, func() { w.Watch(a) }); n != 0 {
		t.Fatalf("watching the same context again allocates %v times", n)
	}
	b, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	stopA := w.Watch(b)
	if stopA == nil || !stopA() {
		t.Fatal("the registration for a was not handed back, or had run")
	}
	cancelA()
	cancelB()
	select {
	case done := <-ended:
		if done != b.Done() {
			t.Fatal("the callback got another context's channel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the callback did not run")
	}
	select {
	case <-ended:
		t.Fatal("the replaced registration ran")
	case <-time.After(50 * time.Millisecond):
	}
	w.Ended(b.Done())
	if w.Active() {
		t.Fatal("Ended did not forget the registration")
	}
	c, cancelC := context.WithCancel(context.Background())
	defer cancelC()
	w.Watch(c)
	if stop := w.Stop(); stop == nil || !stop() || w.Active() {
		t.Fatal("Stop")
	}
}
