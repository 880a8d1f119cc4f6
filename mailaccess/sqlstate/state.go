package sqlstate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unimail/unimail/mailaccess"
)

// dialect is the SQL dialect of a database.
type dialect int

const (
	sqliteDB dialect = iota + 1
	postgres
)

// queries are the statements of one dialect and table prefix.
type queries struct {
	version, records, lookup, count, put, forget, mark, setMark string
	// lock, on PostgreSQL, begins every write transaction. It takes a
	// lock on the mailbox (an advisory lock on a hash of the prefix and
	// the mailbox name, $1), so that the writes of one mailbox take turns
	// instead of deadlocking on its rows and counts; and it makes the
	// commit wait for the WAL flush even where the session's
	// synchronous_commit is off, since Put promises durability.
	lock string
}

const recordColumns = "uid, epoch, delivered_ns, size, sha256, copied_to"

const upsert = ` ON CONFLICT (mailbox, uid) DO UPDATE SET epoch = excluded.epoch,
	delivered_ns = excluded.delivered_ns, size = excluded.size,
	sha256 = excluded.sha256, copied_to = excluded.copied_to`

func newQueries(d dialect, prefix string) queries {
	q := queries{
		version: "SELECT coalesce(max(version), 0) FROM {p}schema_version",
		records: "SELECT " + recordColumns + " FROM {p}records WHERE mailbox = $1",
		count:   "SELECT coalesce(sum(n), 0), coalesce(sum(CASE WHEN epoch = $2 THEN n END), 0) FROM {p}counts WHERE mailbox = $1",
		mark:    "SELECT uid FROM {p}marks WHERE mailbox = $1",
		setMark: "INSERT INTO {p}marks (mailbox, uid) VALUES ($1, $2) ON CONFLICT (mailbox) DO UPDATE SET uid = excluded.uid",
	}
	switch d {
	case sqliteDB:
		// SQLite has no arrays: a set of UIDs travels as a JSON array.
		q.lookup = "SELECT " + recordColumns + " FROM {p}records WHERE mailbox = $1 AND uid IN (SELECT value FROM json_each($2))"
		q.forget = "DELETE FROM {p}records WHERE mailbox = $1 AND uid IN (SELECT value FROM json_each($2))"
		q.put = "INSERT INTO {p}records (mailbox, " + recordColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7)" + upsert
	case postgres:
		q.lookup = "SELECT " + recordColumns + " FROM {p}records WHERE mailbox = $1 AND uid = ANY($2::text[])"
		q.forget = "DELETE FROM {p}records WHERE mailbox = $1 AND uid = ANY($2::text[])"
		q.put = "INSERT INTO {p}records (mailbox, " + recordColumns + ") SELECT $1, " + recordColumns +
			" FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bytea[], $7::text[]) AS r(" + recordColumns + ")" + upsert
		q.lock = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), CASE WHEN current_setting('synchronous_commit') = 'off' THEN set_config('synchronous_commit', 'local', true) END"
	}
	for _, p := range []*string{&q.version, &q.records, &q.lookup, &q.count, &q.put, &q.forget, &q.mark, &q.setMark} {
		*p = strings.ReplaceAll(*p, "{p}", prefix)
	}
	return q
}

// text reports why s cannot be stored as text (valid UTF-8 without NUL,
// as both dialects keep it), or nil.
func text(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", mailaccess.ErrInvalidArgument, what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s holds a NUL byte", mailaccess.ErrInvalidArgument, what)
	}
	return nil
}

// storable reports whether s can be stored; what cannot be stored is
// never found either.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// begin starts a call: it refuses a closed State and bounds ctx.
func (s *State) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() || (s.parent != nil && s.parent.closed.Load()) {
		return nil, nil, errClosed
	}
	ctx, cancel := withTimeout(ctx)
	return ctx, cancel, nil
}

// Records returns every record of the mailbox, in no particular order.
func (s *State) Records(ctx context.Context, mailbox string) ([]mailaccess.Record, error) {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, s.fail(ctx, "records", err)
	}
	defer cancel()
	if !storable(mailbox) {
		return nil, nil
	}
	recs, err := s.query(c, s.q.records, mailbox)
	return recs, s.fail(ctx, "records", err)
}

// Lookup returns the records of those of uids that have one, in no
// particular order, each once. It reads only those records (an index
// lookup per UID).
func (s *State) Lookup(ctx context.Context, mailbox string, uids ...mailaccess.UID) ([]mailaccess.Record, error) {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, s.fail(ctx, "lookup", err)
	}
	defer cancel()
	set := uidSet(uids)
	if len(set) == 0 || !storable(mailbox) {
		return nil, nil
	}
	arg, err := s.uidsArg(set)
	if err != nil {
		return nil, s.fail(ctx, "lookup", err)
	}
	recs, err := s.query(c, s.q.lookup, mailbox, arg)
	return recs, s.fail(ctx, "lookup", err)
}

// uidSet returns the storable UIDs of uids, each once.
func uidSet(uids []mailaccess.UID) []string {
	out := make([]string, 0, len(uids))
	for _, u := range uids {
		if storable(string(u)) {
			out = append(out, string(u))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// uidsArg is a set of UIDs as the dialect's statements take it.
func (s *State) uidsArg(uids []string) (any, error) {
	if s.d == postgres {
		return uids, nil
	}
	b, err := json.Marshal(uids)
	return string(b), err
}

// query runs a query of records.
func (s *State) query(ctx context.Context, q string, args ...any) ([]mailaccess.Record, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []mailaccess.Record
	// Records of a mailbox mostly share their epoch: keep one string.
	var epoch, copied string
	var epochRaw, copiedRaw, sum sql.RawBytes
	for rows.Next() {
		var r mailaccess.Record
		var ns int64
		if err := rows.Scan(&r.UID, &epochRaw, &ns, &r.Size, &sum, &copiedRaw); err != nil {
			return nil, err
		}
		if len(sum) != len(r.SHA256) {
			return nil, fmt.Errorf("record %q has a fingerprint of %d bytes, not %d", r.UID, len(sum), len(r.SHA256))
		}
		copy(r.SHA256[:], sum)
		if string(epochRaw) != epoch {
			epoch = string(epochRaw)
		}
		if string(copiedRaw) != copied {
			copied = string(copiedRaw)
		}
		r.Epoch, r.CopiedTo = epoch, copied
		r.Delivered = time.Unix(0, ns).UTC()
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// Put stores the records in one transaction, replacing those with the
// same UID (within recs too: the last one wins), and returns once the
// transaction is committed durably; if it returns an error, none of recs
// was stored, or (when the connection failed during the commit) all of
// them. UIDs, epochs, folders and the mailbox name must be valid UTF-8
// without NUL, and Delivered within the years 1678 to 2262 (it is kept
// to the nanosecond).
func (s *State) Put(ctx context.Context, mailbox string, recs ...mailaccess.Record) error {
	if len(recs) == 0 {
		return nil
	}
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return s.fail(ctx, "put", err)
	}
	defer cancel()
	rows, err := putRows(mailbox, recs)
	if err != nil {
		return s.fail(ctx, "put", err)
	}
	return s.fail(ctx, "put", s.write(c, mailbox, func(tx *sql.Tx) error {
		if s.d == postgres {
			_, err := tx.ExecContext(c, s.q.put, mailbox, rows.uid, rows.epoch, rows.delivered, rows.size, rows.sha256, rows.copied)
			return err
		}
		stmt, err := tx.PrepareContext(c, s.q.put)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range rows.uid {
			if _, err := stmt.ExecContext(c, mailbox, rows.uid[i], rows.epoch[i], rows.delivered[i], rows.size[i], rows.sha256[i], rows.copied[i]); err != nil {
				return err
			}
		}
		return nil
	}))
}

// columns are records as columns, for Put.
type columns struct {
	uid, epoch, copied []string
	delivered, size    []int64
	sha256             [][]byte
}

// putRows checks recs and turns them into columns, one row per UID (the
// last record of a UID wins), sorted by UID so that concurrent Puts lock
// rows in the same order.
func putRows(mailbox string, recs []mailaccess.Record) (columns, error) {
	if err := text("mailbox name", mailbox); err != nil {
		return columns{}, err
	}
	last := make(map[mailaccess.UID]int, len(recs))
	for i, r := range recs {
		last[r.UID] = i
	}
	order := make([]int, 0, len(last))
	for i, r := range recs {
		if last[r.UID] == i {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(string(recs[a].UID), string(recs[b].UID)) })
	c := columns{
		uid: make([]string, len(order)), epoch: make([]string, len(order)), copied: make([]string, len(order)),
		delivered: make([]int64, len(order)), size: make([]int64, len(order)), sha256: make([][]byte, len(order)),
	}
	for j, i := range order {
		r := &recs[i]
		if err := errors.Join(text("UID", string(r.UID)), text("epoch", r.Epoch), text("CopiedTo", r.CopiedTo)); err != nil {
			return columns{}, err
		}
		ns := r.Delivered.UnixNano()
		if !time.Unix(0, ns).Equal(r.Delivered) {
			return columns{}, fmt.Errorf("%w: the delivery time of %q, %s, is outside the years 1678 to 2262", mailaccess.ErrInvalidArgument, r.UID, r.Delivered)
		}
		c.uid[j], c.epoch[j], c.copied[j] = string(r.UID), r.Epoch, r.CopiedTo
		c.delivered[j], c.size[j], c.sha256[j] = ns, r.Size, r.SHA256[:]
	}
	return c, nil
}

// write runs f in a transaction on mailbox and commits it. On SQLite the
// State's writes take turns; on PostgreSQL the writes of one mailbox do,
// and the commit is made durable (see queries.lock).
func (s *State) write(ctx context.Context, mailbox string, f func(tx *sql.Tx) error) error {
	if s.d == sqliteDB {
		select {
		case s.writer <- struct{}{}:
			defer func() { <-s.writer }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.q.lock != "" {
		if _, err := tx.ExecContext(ctx, s.q.lock, s.prefix+mailbox); err != nil {
			return err
		}
	}
	if s.fence != nil {
		if err := s.fence(ctx, tx); err != nil {
			return err
		}
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Forget removes the records of these UIDs; an unknown UID is not an
// error.
func (s *State) Forget(ctx context.Context, mailbox string, uids ...mailaccess.UID) error {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return s.fail(ctx, "forget", err)
	}
	defer cancel()
	set := uidSet(uids)
	if len(set) == 0 || !storable(mailbox) {
		return nil
	}
	arg, err := s.uidsArg(set)
	if err != nil {
		return s.fail(ctx, "forget", err)
	}
	return s.fail(ctx, "forget", s.write(c, mailbox, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(c, s.q.forget, mailbox, arg)
		return err
	}))
}

// Mark returns the mailbox's mark, or "" when it has none.
func (s *State) Mark(ctx context.Context, mailbox string) (mailaccess.UID, error) {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return "", s.fail(ctx, "mark", err)
	}
	defer cancel()
	if !storable(mailbox) {
		return "", nil
	}
	var uid string
	err = s.db.QueryRowContext(c, s.q.mark, mailbox).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return mailaccess.UID(uid), s.fail(ctx, "mark", err)
}

// SetMark stores the mailbox's mark durably, replacing the one it had.
func (s *State) SetMark(ctx context.Context, mailbox string, uid mailaccess.UID) error {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return s.fail(ctx, "set mark", err)
	}
	defer cancel()
	if err := errors.Join(text("mailbox name", mailbox), text("mark", string(uid))); err != nil {
		return s.fail(ctx, "set mark", err)
	}
	return s.fail(ctx, "set mark", s.write(c, mailbox, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(c, s.q.setMark, mailbox, string(uid))
		return err
	}))
}

// Count returns the number of the mailbox's records, and how many of them
// are of the UID epoch epoch. It reads one row per epoch of the mailbox,
// whatever the number of records: the counts are kept up to date by the
// database, in the transactions that change the records.
func (s *State) Count(ctx context.Context, mailbox, epoch string) (total, inEpoch int, err error) {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return 0, 0, s.fail(ctx, "count", err)
	}
	defer cancel()
	if !storable(mailbox) {
		return 0, 0, nil
	}
	// An epoch that cannot be stored is no record's.
	known := storable(epoch)
	if !known {
		epoch = ""
	}
	var t, e int64
	if err := s.db.QueryRowContext(c, s.q.count, mailbox, epoch).Scan(&t, &e); err != nil {
		return 0, 0, s.fail(ctx, "count", err)
	}
	if !known {
		e = 0
	}
	return int(t), int(e), nil
}
