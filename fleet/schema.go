package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
)

// dialect is the SQL dialect of the fleet's database.
type dialect int

const (
	sqliteDB dialect = iota + 1
	postgres
)

// schemaVersion is the version of the fleet's tables that this package
// writes: 1 made the accounts' table, 2 added its run_now and run_seen
// columns (RunNow).
const schemaVersion = 2

// ErrNewerSchema is matched (with mailaccess.ErrState) by the error of
// OpenSQLite and OpenPostgres when the fleet's tables were made by a newer
// version of this package.
var ErrNewerSchema = errors.New("the fleet's tables are newer than this version of the package knows")

// accountsTable is the fleet's one table, the same in both dialects
// (integers for times, in Unix nanoseconds, and for booleans).
const accountsTable = `CREATE TABLE {p}fleet_accounts (
	id              TEXT NOT NULL PRIMARY KEY,
	url             TEXT NOT NULL,
	retention       TEXT NOT NULL,
	handler         TEXT NOT NULL,
	every_ns        BIGINT NOT NULL,
	push            INTEGER NOT NULL,
	fence           BIGINT NOT NULL DEFAULT 0,
	stopped         INTEGER NOT NULL DEFAULT 0,
	failures        INTEGER NOT NULL DEFAULT 0,
	last_start_ns   BIGINT NOT NULL DEFAULT 0,
	last_success_ns BIGINT NOT NULL DEFAULT 0,
	last_error_ns   BIGINT NOT NULL DEFAULT 0,
	last_error_kind TEXT NOT NULL DEFAULT '',
	last_error      TEXT NOT NULL DEFAULT '',
	next_run_ns     BIGINT NOT NULL DEFAULT 0,
	runs            BIGINT NOT NULL DEFAULT 0,
	fetched         BIGINT NOT NULL DEFAULT 0,
	bytes           BIGINT NOT NULL DEFAULT 0,
	run_now         BIGINT NOT NULL DEFAULT 0,
	run_seen        BIGINT NOT NULL DEFAULT 0
)`

// The columns of RunNow, which version 2 added: run_now counts the
// requests to run the account now; run_seen is the fencing token of the
// last run that looked at them as it ended (a run that starts after a
// request fetches after it; a run that has not yet looked when the request
// comes is due again at once).
var addRunNow = []string{
	"ALTER TABLE {p}fleet_accounts ADD COLUMN run_now BIGINT NOT NULL DEFAULT 0",
	"ALTER TABLE {p}fleet_accounts ADD COLUMN run_seen BIGINT NOT NULL DEFAULT 0",
}

// migrateFleet creates the fleet's tables, or checks their version, in one
// transaction that holds a lock against other processes doing the same.
func migrateFleet(ctx context.Context, db *sql.DB, d dialect, prefix string) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := "BEGIN IMMEDIATE"
	if d == postgres {
		begin = "BEGIN"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if d == postgres {
		h := fnv.New64a()
		h.Write([]byte("unimail fleet schema " + prefix))
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
			return err
		}
	}
	p := func(q string) string { return strings.ReplaceAll(q, "{p}", prefix) }
	if _, err := conn.ExecContext(ctx, p("CREATE TABLE IF NOT EXISTS {p}fleet_version (version INTEGER NOT NULL)")); err != nil {
		return err
	}
	var v int
	if err := conn.QueryRowContext(ctx, p("SELECT coalesce(max(version), 0) FROM {p}fleet_version")).Scan(&v); err != nil {
		return err
	}
	switch {
	case v > schemaVersion:
		return fmt.Errorf("%w: %sfleet_version says %d, this package writes %d; upgrade unimail to open it", ErrNewerSchema, prefix, v, schemaVersion)
	case v == 0:
		for _, q := range []string{accountsTable, "INSERT INTO {p}fleet_version (version) VALUES (2)"} {
			if _, err := conn.ExecContext(ctx, p(q)); err != nil {
				return fmt.Errorf("creating the fleet's tables: %w", err)
			}
		}
	case v == 1:
		for _, q := range append(addRunNow, "INSERT INTO {p}fleet_version (version) VALUES (2)") {
			if _, err := conn.ExecContext(ctx, p(q)); err != nil {
				return fmt.Errorf("migrating the fleet's tables to version 2: %w", err)
			}
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// queries are the fleet's statements for one table prefix; both dialects
// take $n parameters.
type queries struct {
	upsert, remove, load, bump, check, record, list, overdue string
	runNow, fence, seen                                      string
}

func newQueries(d dialect, prefix string) queries {
	forShare := ""
	if d == postgres {
		forShare = " FOR SHARE"
	}
	q := queries{
		upsert: `INSERT INTO {p}fleet_accounts (id, url, retention, handler, every_ns, push, next_run_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO UPDATE SET url = excluded.url, retention = excluded.retention,
			handler = excluded.handler, every_ns = excluded.every_ns, push = excluded.push,
			stopped = 0, failures = 0`,
		remove: "DELETE FROM {p}fleet_accounts WHERE id = $1",
		load:   "SELECT url, retention, handler, every_ns, push, stopped, failures FROM {p}fleet_accounts WHERE id = $1",
		bump:   "UPDATE {p}fleet_accounts SET fence = fence + 1, last_start_ns = $2 WHERE id = $1 RETURNING fence, run_now",
		check:  "SELECT fence FROM {p}fleet_accounts WHERE id = $1" + forShare,
		record: `UPDATE {p}fleet_accounts SET failures = $3,
			last_success_ns = CASE WHEN $4 > last_success_ns THEN $4 ELSE last_success_ns END,
			last_error_ns = CASE WHEN $5 > last_error_ns THEN $5 ELSE last_error_ns END,
			last_error_kind = CASE WHEN $5 > last_error_ns THEN $6 ELSE last_error_kind END,
			last_error = CASE WHEN $5 > last_error_ns THEN $7 ELSE last_error END,
			next_run_ns = $8, runs = runs + 1, fetched = fetched + $9, bytes = bytes + $10, stopped = $11
			WHERE id = $1 AND fence = $2`,
		list: `SELECT id, url, retention, handler, every_ns, push, stopped, failures, last_start_ns, last_success_ns,
			last_error_ns, last_error_kind, last_error, next_run_ns, runs, fetched, bytes FROM {p}fleet_accounts ORDER BY id`,
		overdue: "SELECT id FROM {p}fleet_accounts WHERE stopped = 0 AND next_run_ns < $1 AND last_start_ns < $2",
		runNow:  "UPDATE {p}fleet_accounts SET run_now = run_now + 1 WHERE id = $1 RETURNING fence, run_seen",
		fence:   "SELECT fence FROM {p}fleet_accounts WHERE id = $1",
		seen:    "UPDATE {p}fleet_accounts SET run_seen = $2 WHERE id = $1 AND fence = $2 RETURNING run_now",
	}
	for _, s := range []*string{&q.upsert, &q.remove, &q.load, &q.bump, &q.check, &q.record, &q.list, &q.overdue, &q.runNow, &q.fence, &q.seen} {
		*s = strings.ReplaceAll(*s, "{p}", prefix)
	}
	return q
}
