// Package sqlstate keeps the delivery state of mailaccess (which messages
// were delivered, per mailbox) in an SQL database, through database/sql.
// Its State implements mailaccess.State and mailaccess.IncrementalState,
// and passes the same conformance suite (mailaccesstest.TestState) as
// MemoryState and FileState.
//
// It is for programs that read many mailboxes, or that already run a
// database: where FileState reads its whole journal when it opens,
// opening a State reads one row whatever the number of records, and a run
// reads only the records it needs (a count and lookups by UID, from
// indexes). Many Fetchers may share one State, each on its own mailbox;
// on PostgreSQL, so may several processes on several machines. Package
// fleet keeps its accounts in the same database and writes through
// State.Fenced, so that a worker that lost an account cannot record
// deliveries for it.
//
// # Two dialects
//
// SQLite is the embedded default: OpenSQLite takes a file path and needs
// nothing installed (modernc.org/sqlite is pure Go). PostgreSQL is for
// sharing the state between processes and machines: OpenPostgres takes a
// DSN, and Open takes a *sql.DB that the application owns and opened with
// github.com/jackc/pgx/v5/stdlib (or with modernc.org/sqlite).
//
// # Durability
//
// Put stores its batch in one transaction and returns once it is
// committed durably: on SQLite, OpenSQLite's connections use WAL with
// synchronous=FULL, so a commit is on disk when it returns; on
// PostgreSQL, a write transaction raises the session's synchronous_commit
// to local when it is off. A Put that returns an error stored none of its
// records (or, when the connection failed during the commit, all of
// them): never a part of a batch. This is what mailaccess's safety
// contract asks of a State: a message is deleted only after its record
// is durable.
//
// Every error matches mailaccess.ErrState; one of a database that cannot
// be reached or is busy also matches mailaccess.ErrUnavailable, so that
// mailaccess.IsTemporary (and Fetcher.Run) retry it. No error shows the
// password of OpenPostgres's DSN. A call whose context has no deadline
// gives up after a minute.
//
// # The schema
//
// Four tables, named with a prefix ("unimail_" unless Options.TablePrefix
// says otherwise):
//
//	unimail_records         mailbox and uid (the primary key), epoch,
//	                        delivered_ns (Unix time in nanoseconds), size,
//	                        sha256 (32 bytes), copied_to ("" when none)
//	unimail_marks           mailbox (the primary key), uid
//	unimail_counts          mailbox and epoch (the primary key), n: the number
//	                        of records, kept by triggers on unimail_records
//	unimail_schema_version  version: the schema's version, one row
//
// Lookup and Forget are lookups by the records' primary key, Count reads
// the counts of one mailbox (a row per epoch), and Records reads one
// mailbox's range of the primary key. Mailbox names, UIDs, epochs and
// folders are text: valid UTF-8 without NUL (Put and SetMark refuse
// other strings, which then are no record's), compared byte for byte (on
// PostgreSQL with the "C" collation). On PostgreSQL a mailbox name and a
// UID together may not exceed some 2,700 bytes, the limit of an index
// entry.
//
// The package creates the tables, and migrates them when a later version
// of it changes the schema, in one transaction under a lock, so that
// processes opening the database at the same time do not race; a
// database whose schema is newer than the package knows is refused.
// Applications may read the tables; they should not write them.
package sqlstate
