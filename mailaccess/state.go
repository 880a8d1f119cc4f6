package mailaccess

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// Record is what a State remembers of one delivered message.
type Record struct {
	// UID is the message's UID in its mailbox.
	UID UID
	// Epoch is the mailbox's UID epoch when the message was delivered
	// (driver.Description.UIDEpoch: the IMAP UIDVALIDITY).
	Epoch string
	// Delivered is when the handler first took the message.
	Delivered time.Time
	// Size is the number of octets delivered.
	Size int64
	// SHA256 is the fingerprint of the raw bytes delivered; it recognises
	// content already delivered after the server renumbered its UIDs.
	SHA256 [sha256.Size]byte
	// CopiedTo, when not empty, is the folder that a move already copied
	// the message to without removing it from this mailbox (the driver.Mover
	// said ErrCopiedNotRemoved). Under MoveTo of that same folder the
	// next run then only removes the message, so the folder does not get
	// a second copy. A State that does not keep this field costs one
	// duplicate copy in that case, never a message.
	CopiedTo string
}

// State remembers which messages were delivered, per mailbox (keyed by
// Mailbox.Name). Implementations must be safe for concurrent use by the
// Fetchers of different mailboxes.
//
// The Fetcher calls Put right after the handler returned nil for a message
// and before it deletes or moves that message, so Put must not return
// before the record is durable: a record that is lost after Put returned
// can turn into a deleted message that was never delivered. Put returns
// an error instead when it cannot make the record durable.
type State interface {
	// Records returns every record of the mailbox, in no particular order.
	Records(ctx context.Context, mailbox string) ([]Record, error)
	// Put stores records durably, replacing those with the same UID.
	Put(ctx context.Context, mailbox string, recs ...Record) error
	// Forget removes the records of these UIDs, when the messages have
	// left the mailbox. Forgetting an unknown UID is not an error.
	Forget(ctx context.Context, mailbox string, uids ...UID) error
}

// MemoryState is a State held in memory, for tests and for programs that
// need no memory across processes. The zero value is ready to use.
type MemoryState struct {
	mu    sync.Mutex
	m     map[string]map[UID]Record
	marks map[string]UID
}

var _ State = (*MemoryState)(nil)

// Records returns the mailbox's records.
func (s *MemoryState) Records(_ context.Context, mailbox string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]Record, 0, len(s.m[mailbox]))
	for _, r := range s.m[mailbox] {
		recs = append(recs, r)
	}
	return recs, nil
}

// Put stores the records.
func (s *MemoryState) Put(_ context.Context, mailbox string, recs ...Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]map[UID]Record)
	}
	mb := s.m[mailbox]
	if mb == nil {
		mb = make(map[UID]Record)
		s.m[mailbox] = mb
	}
	for _, r := range recs {
		mb[r.UID] = r
	}
	return nil
}

// Forget removes the records of uids.
func (s *MemoryState) Forget(_ context.Context, mailbox string, uids ...UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range uids {
		delete(s.m[mailbox], u)
	}
	return nil
}

// IncrementalState is implemented by States that let a run read only what
// it needs, as a database does with an index: a mark per mailbox (the UID
// of the last message before which every message was taken), a count of
// the mailbox's records, and lookups by UID. With a mailbox that can list
// after a UID (driver.AfterLister: IMAP), a KeepOnServer or KeepFor run
// then lists only the messages after the mark, and a KeepOnServer run
// reads only their records, so that a run with nothing new costs the same
// on a mailbox of ten messages and on one of a hundred thousand.
// MemoryState, FileState and package sqlstate's State implement it.
type IncrementalState interface {
	State
	// Mark returns the mailbox's mark, or "" when it has none.
	Mark(ctx context.Context, mailbox string) (UID, error)
	// SetMark stores the mailbox's mark durably.
	SetMark(ctx context.Context, mailbox string, uid UID) error
	// Count returns the number of the mailbox's records, and how many of
	// them are of the UID epoch epoch.
	Count(ctx context.Context, mailbox, epoch string) (total, inEpoch int, err error)
	// Lookup returns the records of those of uids that have one, in no
	// particular order.
	Lookup(ctx context.Context, mailbox string, uids ...UID) ([]Record, error)
}

var _ IncrementalState = (*MemoryState)(nil)

// Mark returns the mailbox's mark.
func (s *MemoryState) Mark(_ context.Context, mailbox string) (UID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[mailbox], nil
}

// SetMark stores the mailbox's mark.
func (s *MemoryState) SetMark(_ context.Context, mailbox string, uid UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = make(map[string]UID)
	}
	s.marks[mailbox] = uid
	return nil
}

// Count counts the mailbox's records.
func (s *MemoryState) Count(_ context.Context, mailbox, epoch string) (total, inEpoch int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, inEpoch = countEpoch(s.m[mailbox], epoch)
	return total, inEpoch, nil
}

// Lookup returns the records of uids.
func (s *MemoryState) Lookup(_ context.Context, mailbox string, uids ...UID) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lookup(s.m[mailbox], uids), nil
}

func countEpoch(m map[UID]Record, epoch string) (total, inEpoch int) {
	for _, r := range m {
		if r.Epoch == epoch {
			inEpoch++
		}
	}
	return len(m), inEpoch
}

func lookup(m map[UID]Record, uids []UID) []Record {
	var out []Record
	for _, u := range uids {
		if r, ok := m[u]; ok {
			out = append(out, r)
		}
	}
	return out
}
