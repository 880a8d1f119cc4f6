package sqlstate_test

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/sqlstate"
)

// The benchmarks measure what a run costs the State: opening it (on
// SQLite, with 100,000 records in it), Put of one record (what the
// Fetcher does per message) and of a batch of 256, and the reads of an
// incremental run on a mailbox of 100,000 records (Count and a Lookup of
// 10 UIDs). Run them with
//
//	go test -run '^$' -bench . -benchtime 2s ./mailaccess/sqlstate/

const benchMailbox = "imap://alice@mail.example.com/INBOX"

func benchRecord(i int) mailaccess.Record {
	uid := fmt.Sprintf("1700000000/%d", i)
	return mailaccess.Record{UID: mailaccess.UID(uid), Epoch: "1700000000", Delivered: time.Unix(1700000000, int64(i)).UTC(), Size: 4096 + int64(i%1000), SHA256: sha256.Sum256([]byte(uid))}
}

func fill(b *testing.B, s *sqlstate.State, n int) {
	b.Helper()
	const chunk = 10000
	for i := 0; i < n; i += chunk {
		recs := make([]mailaccess.Record, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			recs = append(recs, benchRecord(j+1))
		}
		if err := s.Put(ctxT(b), benchMailbox, recs...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSQLite100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	s := openSQLite(b, path, nil)
	fill(b, s, 100000)
	s.Close()
	for b.Loop() {
		s, err := sqlstate.OpenSQLite(ctxT(b), path, nil)
		if err != nil {
			b.Fatal(err)
		}
		// A first query, so that the open is complete.
		if _, err := s.Mark(ctxT(b), benchMailbox); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// dialects runs f on a new State of each dialect.
func dialects(b *testing.B, f func(b *testing.B, s *sqlstate.State)) {
	b.Run("sqlite", func(b *testing.B) { f(b, openSQLite(b, filepath.Join(b.TempDir(), "state.db"), nil)) })
	b.Run("postgres", func(b *testing.B) { f(b, openPostgres(b, newPostgres(b), nil)) })
}

func BenchmarkPut1(b *testing.B) {
	dialects(b, func(b *testing.B, s *sqlstate.State) {
		i := 0
		for b.Loop() {
			i++
			if err := s.Put(ctxT(b), benchMailbox, benchRecord(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPut256(b *testing.B) {
	dialects(b, func(b *testing.B, s *sqlstate.State) {
		i := 0
		for b.Loop() {
			recs := make([]mailaccess.Record, 256)
			for j := range recs {
				i++
				recs[j] = benchRecord(i)
			}
			if err := s.Put(ctxT(b), benchMailbox, recs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/record")
	})
}

// BenchmarkIncrementalReads100k: what a KeepOnServer run with nothing new
// asks of the State on a mailbox of 100,000 records (the mark, the count,
// and the records of the listed UIDs: here 10).
func BenchmarkIncrementalReads100k(b *testing.B) {
	dialects(b, func(b *testing.B, s *sqlstate.State) {
		fill(b, s, 100000)
		uids := make([]mailaccess.UID, 10)
		for i := range uids {
			uids[i] = benchRecord(99990 + i).UID
		}
		for b.Loop() {
			if _, err := s.Mark(ctxT(b), benchMailbox); err != nil {
				b.Fatal(err)
			}
			if total, _, err := s.Count(ctxT(b), benchMailbox, "1700000000"); err != nil || total != 100000 {
				b.Fatal(total, err)
			}
			if recs, err := s.Lookup(ctxT(b), benchMailbox, uids...); err != nil || len(recs) != 10 {
				b.Fatal(len(recs), err)
			}
		}
	})
}

// BenchmarkRecords100k: reading every record of a mailbox of 100,000
// (what a whole listing needs).
func BenchmarkRecords100k(b *testing.B) {
	dialects(b, func(b *testing.B, s *sqlstate.State) {
		fill(b, s, 100000)
		for b.Loop() {
			if recs, err := s.Records(ctxT(b), benchMailbox); err != nil || len(recs) != 100000 {
				b.Fatal(len(recs), err)
			}
		}
	})
}
