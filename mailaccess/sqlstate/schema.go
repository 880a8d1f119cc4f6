package sqlstate

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// migrations are the schema's versions: migrations[i] takes a database
// from version i to version i+1. "{p}" stands for the table prefix. A
// migration, once released, is never changed: a new version gets a new
// entry.
var migrations = []struct{ sqlite, postgres []string }{
	// Version 1: the records, keyed by (mailbox, uid); the marks, keyed
	// by mailbox; the number of records per mailbox and epoch, kept by
	// triggers in the transaction that changes the records, so that Count
	// reads a row per epoch instead of counting records.
	{
		sqlite: []string{
			`CREATE TABLE {p}records (
				mailbox      TEXT NOT NULL,
				uid          TEXT NOT NULL,
				epoch        TEXT NOT NULL,
				delivered_ns INTEGER NOT NULL,
				size         INTEGER NOT NULL,
				sha256       BLOB NOT NULL,
				copied_to    TEXT NOT NULL,
				PRIMARY KEY (mailbox, uid)
			) STRICT, WITHOUT ROWID`,
			`CREATE TABLE {p}marks (
				mailbox TEXT NOT NULL PRIMARY KEY,
				uid     TEXT NOT NULL
			) STRICT, WITHOUT ROWID`,
			`CREATE TABLE {p}counts (
				mailbox TEXT NOT NULL,
				epoch   TEXT NOT NULL,
				n       INTEGER NOT NULL,
				PRIMARY KEY (mailbox, epoch)
			) STRICT, WITHOUT ROWID`,
			`CREATE TRIGGER {p}records_count_insert AFTER INSERT ON {p}records BEGIN
				INSERT INTO {p}counts (mailbox, epoch, n) VALUES (new.mailbox, new.epoch, 1)
					ON CONFLICT (mailbox, epoch) DO UPDATE SET n = n + 1;
			END`,
			`CREATE TRIGGER {p}records_count_update AFTER UPDATE OF epoch ON {p}records
			WHEN old.epoch <> new.epoch BEGIN
				INSERT INTO {p}counts (mailbox, epoch, n) VALUES (new.mailbox, new.epoch, 1)
					ON CONFLICT (mailbox, epoch) DO UPDATE SET n = n + 1;
				UPDATE {p}counts SET n = n - 1 WHERE mailbox = old.mailbox AND epoch = old.epoch;
				DELETE FROM {p}counts WHERE mailbox = old.mailbox AND epoch = old.epoch AND n = 0;
			END`,
			`CREATE TRIGGER {p}records_count_delete AFTER DELETE ON {p}records BEGIN
				UPDATE {p}counts SET n = n - 1 WHERE mailbox = old.mailbox AND epoch = old.epoch;
				DELETE FROM {p}counts WHERE mailbox = old.mailbox AND epoch = old.epoch AND n = 0;
			END`,
		},
		postgres: []string{
			`CREATE TABLE {p}records (
				mailbox      text COLLATE "C" NOT NULL,
				uid          text COLLATE "C" NOT NULL,
				epoch        text COLLATE "C" NOT NULL,
				delivered_ns bigint NOT NULL,
				size         bigint NOT NULL,
				sha256       bytea NOT NULL CHECK (length(sha256) = 32),
				copied_to    text NOT NULL,
				PRIMARY KEY (mailbox, uid)
			)`,
			`CREATE TABLE {p}marks (
				mailbox text COLLATE "C" NOT NULL PRIMARY KEY,
				uid     text COLLATE "C" NOT NULL
			)`,
			`CREATE TABLE {p}counts (
				mailbox text COLLATE "C" NOT NULL,
				epoch   text COLLATE "C" NOT NULL,
				n       bigint NOT NULL,
				PRIMARY KEY (mailbox, epoch)
			)`,
			// Statement-level triggers with transition tables: one
			// update of the counts per statement, not per record.
			`CREATE FUNCTION {p}count_records() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF TG_OP = 'INSERT' THEN
					INSERT INTO {p}counts (mailbox, epoch, n)
						SELECT mailbox, epoch, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
						ON CONFLICT (mailbox, epoch) DO UPDATE SET n = {p}counts.n + excluded.n;
				ELSIF TG_OP = 'UPDATE' THEN
					INSERT INTO {p}counts (mailbox, epoch, n)
						SELECT mailbox, epoch, sum(d) FROM (
							SELECT mailbox, epoch, 1 AS d FROM new_rows
							UNION ALL
							SELECT mailbox, epoch, -1 AS d FROM old_rows
						) AS c GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
						ON CONFLICT (mailbox, epoch) DO UPDATE SET n = {p}counts.n + excluded.n;
					DELETE FROM {p}counts WHERE n = 0 AND (mailbox, epoch) IN (SELECT mailbox, epoch FROM old_rows);
				ELSE
					UPDATE {p}counts AS c SET n = c.n - d.k
						FROM (SELECT mailbox, epoch, count(*) AS k FROM old_rows GROUP BY 1, 2) AS d
						WHERE c.mailbox = d.mailbox AND c.epoch = d.epoch;
					DELETE FROM {p}counts WHERE n = 0 AND (mailbox, epoch) IN (SELECT mailbox, epoch FROM old_rows);
				END IF;
				RETURN NULL;
			END
			$$`,
			`CREATE TRIGGER {p}records_count_insert AFTER INSERT ON {p}records
				REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {p}count_records()`,
			`CREATE TRIGGER {p}records_count_update AFTER UPDATE ON {p}records
				REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {p}count_records()`,
			`CREATE TRIGGER {p}records_count_delete AFTER DELETE ON {p}records
				REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {p}count_records()`,
		},
	},
}

// schemaVersion is the version of the schema that this package writes.
var schemaVersion = len(migrations)

// errNewerSchema is the cause of refusing a database whose schema is
// newer than this package knows.
var errNewerSchema = errors.New("the database's schema is newer than this version of sqlstate knows")

// checkSchema makes sure the tables exist at this package's version: it
// reads the version (one query, whatever the number of records) and
// creates or migrates the tables when they are missing or older.
func (s *State) checkSchema(ctx context.Context) error {
	var v int
	err := s.db.QueryRowContext(ctx, s.q.version).Scan(&v)
	if err == nil && v == schemaVersion {
		return nil
	}
	if err == nil && v > schemaVersion {
		return s.newer(v)
	}
	if err != nil && !noTable(err) {
		return err
	}
	// No version table yet, or an older version.
	return s.migrate(ctx)
}

// noTable reports whether err says that a table does not exist.
func noTable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "42P01" // undefined_table
	}
	var se *sqlite.Error
	return errors.As(err, &se) && strings.Contains(se.Error(), "no such table")
}

func (s *State) newer(v int) error {
	return fmt.Errorf("%w: %sschema_version says %d, this package writes %d; upgrade unimail to open it", errNewerSchema, s.prefix, v, schemaVersion)
}

// migrate brings the schema to this package's version in one transaction
// that holds a lock against other processes migrating at the same time
// (SQLite: BEGIN IMMEDIATE, the database's write lock; PostgreSQL: a
// transaction-level advisory lock named after the table prefix).
func (s *State) migrate(ctx context.Context) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := "BEGIN IMMEDIATE"
	if s.d == postgres {
		begin = "BEGIN"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			// A connection that may still be inside the transaction must
			// not go back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if s.d == postgres {
		h := fnv.New64a()
		h.Write([]byte("unimail sqlstate schema " + s.prefix))
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, s.table("CREATE TABLE IF NOT EXISTS {p}schema_version (version integer NOT NULL)")); err != nil {
		return err
	}
	var v int
	if err := conn.QueryRowContext(ctx, s.q.version).Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return s.newer(v)
	}
	if v == schemaVersion {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	for _, m := range migrations[v:] {
		stmts := m.sqlite
		if s.d == postgres {
			stmts = m.postgres
		}
		for _, q := range stmts {
			if _, err := conn.ExecContext(ctx, s.table(q)); err != nil {
				return fmt.Errorf("migrating the schema from version %d: %w", v, err)
			}
		}
	}
	if _, err := conn.ExecContext(ctx, s.table("DELETE FROM {p}schema_version")); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, s.table("INSERT INTO {p}schema_version (version) VALUES ($1)"), schemaVersion); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// table puts the table prefix into q.
func (s *State) table(q string) string {
	return strings.ReplaceAll(q, "{p}", s.prefix)
}
