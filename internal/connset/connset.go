// Package connset tracks the open connections of the project's in-process
// test servers (pop/poptest, imap/imaptest), so that they can close them
// all and wait until none is left.
package connset

import (
	"context"
	"sync"
)

// Set is a set of open connections. The zero value is an empty set, ready
// to use; a Set must not be copied after first use. It is safe for
// concurrent use.
type Set[C comparable] struct {
	mu   sync.Mutex
	m    map[C]struct{}
	idle chan struct{} // closed when the last connection left; nil at first
}

// Add adds c.
func (s *Set[C]) Add(c C) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[C]struct{})
	}
	if len(s.m) == 0 {
		s.idle = make(chan struct{})
	}
	s.m[c] = struct{}{}
}

// Remove removes c; removing a connection that is not in the set does
// nothing.
func (s *Set[C]) Remove(c C) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[c]; !ok {
		return
	}
	delete(s.m, c)
	if len(s.m) == 0 {
		close(s.idle)
	}
}

// All returns the connections in the set now, in no particular order.
func (s *Set[C]) All() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]C, 0, len(s.m))
	for c := range s.m {
		out = append(out, c)
	}
	return out
}

// WaitIdle waits until the set is empty, or ctx is done.
func (s *Set[C]) WaitIdle(ctx context.Context) error {
	s.mu.Lock()
	if len(s.m) == 0 {
		s.mu.Unlock()
		return nil
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
