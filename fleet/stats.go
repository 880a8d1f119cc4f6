package fleet

import (
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/unimail/unimail/mailaccess"
)

// Stats are the counters of this process's work since Open.
type Stats struct {
	// Running is the number of accounts being worked now.
	Running int
	// Runs is the number of account runs (jobs) that ended.
	Runs int64
	// Fetched and Bytes are the messages and octets delivered to
	// handlers and recorded.
	Fetched, Bytes int64
	// Errors counts the failed runs by kind: "auth", "tls", "unsupported",
	// "invalid", "connection", "server", "in-use", "unavailable",
	// "protocol", "commit", "state", "handler", "credentials", "fenced",
	// "other".
	Errors map[string]int64
	// Fenced counts the runs that found their account taken over by
	// another worker (counted in Errors too).
	Fenced int64
	// Lag is how late the last run started after it was due, and MaxLag
	// the most since Open.
	Lag, MaxLag time.Duration
}

// stats are the live counters behind Stats.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func (s *stats) init() { s.s.Errors = map[string]int64{} }

func (s *stats) update(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

// Stats returns a copy of this process's counters.
func (f *Fleet) Stats() Stats {
	f.stats.mu.Lock()
	defer f.stats.mu.Unlock()
	s := f.stats.s
	s.Errors = maps.Clone(s.Errors)
	return s
}

// kinds name the error kinds, in the order they are tested.
var kinds = []struct {
	name string
	err  error
}{
	{"fenced", ErrFenced},
	{"credentials", errCredentials},
	{"auth", mailaccess.ErrAuth},
	{"tls", mailaccess.ErrTLS},
	{"unsupported", mailaccess.ErrUnsupported},
	{"invalid", mailaccess.ErrInvalidArgument},
	{"in-use", mailaccess.ErrInUse},
	{"unavailable", mailaccess.ErrUnavailable},
	{"commit", mailaccess.ErrCommitFailed},
	{"commit", mailaccess.ErrCommitUnknown},
	{"state", mailaccess.ErrState},
	{"handler", mailaccess.ErrHandler},
	{"protocol", mailaccess.ErrProtocol},
	{"server", mailaccess.ErrServer},
	{"connection", mailaccess.ErrConnection},
}

// kindOf names err's kind for Stats.Errors and AccountStatus.
func kindOf(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}
