package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unimail/unimail/internal/deliver"
	"github.com/unimail/unimail/internal/dovecottest"
	"github.com/unimail/unimail/mailaccess"
)

// corpusDir is where the shared corpus of real-world messages lives,
// relative to this package.
const corpusDir = "../../../shared/corpus"

type corpusMessage struct {
	path      string
	category  string
	features  string
	raw       []byte // as seeded: CRLF line ends
	malformed bool
}

// loadCorpus reads every message of MANIFEST.tsv, normalised to CRLF line
// ends (every bare LF becomes CRLF; a final CRLF is added when missing),
// as a server stores and sends them.
func loadCorpus(t *testing.T) []corpusMessage {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "MANIFEST.tsv"))
	if err != nil {
		t.Skipf("corpus not found at %s: %v", corpusDir, err)
	}
	defer f.Close()
	var out []corpusMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 5 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(corpusDir, cols[0]))
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		out = append(out, corpusMessage{path: cols[0], category: cols[3], features: cols[4], raw: ToCRLF(b), malformed: cols[3] == "malformed"})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Skip("corpus manifest is empty")
	}
	return out
}

// ToCRLF turns every bare LF into CRLF and makes sure the message ends
// with CRLF. Other bytes (bare CR, NUL, 8-bit) are left alone.
func ToCRLF(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32 + 2)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// Every corpus message, seeded into Dovecot, comes through both protocols
// into a Maildir (with the delivery code of examples/retrieve) byte for
// byte. Messages that go-message cannot parse are delivered whole all the
// same.
func TestCorpusByteExact(t *testing.T) {
	corpus := loadCorpus(t)
	d := dovecottest.Start(t, nil)
	raws := make([][]byte, len(corpus))
	want := map[[32]byte]int{}
	for i, m := range corpus {
		raws[i] = m.raw
		want[sha256.Sum256(m.raw)]++
	}
	d.Seed(t, user, "INBOX", raws)
	for _, w := range []way{popS, imapS} {
		t.Run(w.name, func(t *testing.T) {
			md, err := deliver.OpenMaildir(filepath.Join(t.TempDir(), "Maildir"))
			if err != nil {
				t.Fatal(err)
			}
			unparsable := 0
			f := &mailaccess.Fetcher{State: &mailaccess.MemoryState{}}
			rep, err := f.Fetch(t.Context(), dialT(t, d, w, "INBOX"), func(ctx context.Context, m *mailaccess.Message) error {
				// Deliver the raw bytes first; parse a copy, and never let
				// a parse failure block delivery.
				var copyBuf bytes.Buffer
				if _, _, err := md.Deliver(io.TeeReader(m.Body, &copyBuf)); err != nil {
					return err
				}
				if _, err := mailaccess.ParseMessage(&copyBuf); err != nil {
					unparsable++
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			got := map[[32]byte]int{}
			ents, err := os.ReadDir(filepath.Join(md.Dir(), "new"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(md.Dir(), "new", e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got[sha256.Sum256(b)]++
			}
			exact := 0
			for h, n := range want {
				exact += min(n, got[h])
			}
			// IMAP cannot carry NUL in BODY[] (RFC 3501 section 4.3 and
			// RFC 9051 section 4.3: literals exclude NUL); Dovecot sends
			// 0x80 in its place. Those messages must differ in exactly
			// that way and no other.
			nulSubstituted := 0
			var missing []string
			for _, m := range corpus {
				if got[sha256.Sum256(m.raw)] > 0 {
					continue
				}
				if w.protocol == "imap" && bytes.IndexByte(m.raw, 0) >= 0 && got[sha256.Sum256(bytes.ReplaceAll(m.raw, []byte{0}, []byte{0x80}))] > 0 {
					nulSubstituted++
					continue
				}
				missing = append(missing, m.path)
			}
			t.Logf("%s: %d of %d corpus messages delivered byte-exact, %d whose NUL bytes IMAP cannot carry arrived with exactly those bytes as 0x80 (%d delivered; go-message cannot parse %d, delivered whole all the same)", w.name, exact, len(corpus), nulSubstituted, rep.Delivered, unparsable)
			if len(missing) > 0 || rep.Delivered != len(corpus) {
				t.Fatalf("%d of %d delivered; not delivered exactly: %v", rep.Delivered, len(corpus), first(missing, 10))
			}
		})
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
