// Package ctxwatch keeps one context.AfterFunc registration for a run of
// contexts that share a Done channel, as the calls of one session do, so
// that binding the same context again registers and allocates nothing.
//
// A Watch is not safe for concurrent use: its owner guards it with its
// own mutex, and calls the stop functions that Watch and Stop return
// after releasing that mutex (context.AfterFunc's stop may wait for
// nothing, but the callback may take the owner's mutex).
package ctxwatch

import "context"

// Watch is the registration: the Done channel it waits on and the
// function that ends it. The zero Watch watches nothing.
type Watch struct {
	// OnEnd runs, with the Done channel of the watched context, when that
	// context ends. Set it once, before the first Watch: a method value
	// made at each call would cost an allocation per call.
	OnEnd func(done <-chan struct{})

	done <-chan struct{}
	stop func() bool
}

// Watch makes OnEnd run when ctx ends, unless a context with the same
// Done channel is watched already, or ctx can never end. It returns the
// stop function of the registration it replaced, or nil.
func (w *Watch) Watch(ctx context.Context) (replaced func() bool) {
	done := ctx.Done()
	if done == nil || done == w.done {
		return nil
	}
	replaced = w.stop
	w.done = done
	f := w.OnEnd
	w.stop = context.AfterFunc(ctx, func() { f(done) })
	return replaced
}

// Ended forgets the registration when it is the one for done (its
// callback runs: there is nothing left to stop).
func (w *Watch) Ended(done <-chan struct{}) {
	if w.done == done {
		w.done, w.stop = nil, nil
	}
}

// Stop forgets the registration and returns its stop function, or nil.
func (w *Watch) Stop() func() bool {
	stop := w.stop
	w.done, w.stop = nil, nil
	return stop
}

// Active reports whether a registration is in force.
func (w *Watch) Active() bool { return w.stop != nil }
