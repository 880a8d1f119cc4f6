package sqlstate

import (
	"context"
	"database/sql"
)

// Fenced returns a view of s for one writer that may lose its right to
// write (a fleet worker whose account was handed to another): every write
// of the view (Put, Forget, SetMark) first calls check inside the write's
// transaction, after the transaction has begun and before it changes
// anything. When check returns an error the transaction is rolled back,
// nothing of the write is stored, and the write returns that error
// (wrapped, matching mailaccess.ErrState and check's error with
// errors.Is). So a check that reads a row of the same database (a lease
// or fencing token) and a write that depends on it are one transaction:
// on SQLite the write lock is held from the start of the transaction; on
// PostgreSQL, check should lock the row it reads (SELECT ... FOR SHARE) so
// that a concurrent change of the token waits for the commit.
//
// The view shares s's database and reads as s does. Closing the view does
// nothing; closing s makes the view unusable too.
func (s *State) Fenced(check func(ctx context.Context, tx *sql.Tx) error) *State {
	root := s
	if s.parent != nil {
		root = s.parent
	}
	return &State{db: root.db, d: root.d, prefix: root.prefix, q: root.q, writer: root.writer,
		secrets: root.secrets, fence: check, parent: root}
}
