package connset

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	var s Set[int]
	if err := s.WaitIdle(t.Context()); err != nil {
		t.Fatalf("empty set: %v", err)
	}
	s.Add(1)
	s.Add(2)
	got := s.All()
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("All = %v", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitIdle(ctx); err != context.DeadlineExceeded {
		t.Fatalf("WaitIdle with connections open = %v, want the context's end", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitIdle(t.Context()) }()
	s.Remove(1)
	s.Remove(1) // twice: nothing happens
	select {
	case err := <-done:
		t.Fatalf("WaitIdle returned %v with a connection still open", err)
	case <-time.After(10 * time.Millisecond):
	}
	s.Remove(2)
	if err := <-done; err != nil {
		t.Fatalf("WaitIdle after the last Remove = %v", err)
	}
	// Busy again, then idle again.
	s.Add(3)
	s.Remove(3)
	if err := s.WaitIdle(t.Context()); err != nil || len(s.All()) != 0 {
		t.Fatalf("WaitIdle = %v, All = %v", err, s.All())
	}
}
