package bench

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// words is the vocabulary of the generated message text.
var words = []string{
	"the", "mail", "server", "keeps", "a", "copy", "of", "every", "message", "until",
	"client", "deletes", "it", "and", "retention", "policy", "says", "when", "folder",
	"archive", "report", "meeting", "tomorrow", "quarterly", "numbers", "attached",
	"please", "review", "before", "Friday", "thanks", "regards", "invoice", "delivery",
	"schedule", "update", "project", "status", "release", "notes", "version", "build",
	"test", "results", "are", "green", "again", "after", "fix", "in", "parser",
}

// baseDate is the Date of message 0; message i is i minutes later.
var baseDate = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// Message returns a deterministic RFC 5322 message of exactly size octets
// (at least its header, about 400 octets) with CRLF line ends: a plain-text
// mail whose body lines are words, where every 37th line starts with a dot
// so that POP3 dot-stuffing is exercised. i numbers the message (it is in
// the Subject and the Message-ID) and seeds its text.
func Message(i, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 0x756e696d61696c))
	b := make([]byte, 0, size+80)
	b = header(b, i, "text/plain; charset=utf-8")
	line := 0
	for len(b) < size {
		start := len(b)
		if line%37 == 36 {
			b = append(b, '.')
		}
		want := 50 + rng.IntN(27)
		for len(b)-start < want {
			if len(b) > start && b[len(b)-1] != '.' {
				b = append(b, ' ')
			}
			b = append(b, words[rng.IntN(len(words))]...)
		}
		b = append(b, '\r', '\n')
		line++
	}
	return fit(b, size)
}

// LargeMessage returns a deterministic message of exactly size octets
// (size must be at least 1 KiB): a MIME message with a short text part
// and a base64 attachment in 76-character lines, the shape of a large mail.
func LargeMessage(i, size int) []byte {
	const boundary = "unimail-bench-boundary"
	b := make([]byte, 0, size+160)
	b = header(b, i, `multipart/mixed; boundary="`+boundary+`"`)
	b = append(b, "--"+boundary+"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe attachment follows.\r\n\r\n"...)
	b = append(b, "--"+boundary+"\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"...)
	tail := "\r\n--" + boundary + "--\r\n"
	rng := rand.New(rand.NewPCG(uint64(i), 0x6c61726765))
	raw := make([]byte, 57) // 57 octets are one 76-character base64 line
	enc := make([]byte, 76)
	for len(b)+78+len(tail) <= size {
		for j := 0; j < len(raw); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(raw); k++ {
				raw[j+k] = byte(v >> (8 * k))
			}
		}
		base64.StdEncoding.Encode(enc, raw)
		b = append(b, enc...)
		b = append(b, '\r', '\n')
	}
	// The tail starts with CRLF, so a last, shorter line of 'A's fills the
	// message up to size exactly.
	for len(b)+len(tail) < size {
		b = append(b, 'A')
	}
	b = append(b, tail...)
	return fit(b, size)
}

// header appends the header block of message i, with the blank line.
func header(b []byte, i int, contentType string) []byte {
	date := baseDate.Add(time.Duration(i) * time.Minute).Format(time.RFC1123Z)
	b = fmt.Appendf(b, "Return-Path: <sender%d@example.org>\r\n", i%17)
	b = fmt.Appendf(b, "Received: from mx.example.org (mx.example.org [192.0.2.25])\r\n\tby mail.example.com with ESMTPS id b%08x\r\n\tfor <alice@example.com>; %s\r\n", i, date)
	b = fmt.Appendf(b, "From: Sender %d <sender%d@example.org>\r\n", i%17, i%17)
	b = append(b, "To: Alice <alice@example.com>\r\n"...)
	b = fmt.Appendf(b, "Subject: Benchmark message %d\r\n", i)
	b = fmt.Appendf(b, "Date: %s\r\n", date)
	b = fmt.Appendf(b, "Message-ID: <bench.%d@example.org>\r\n", i)
	b = append(b, "MIME-Version: 1.0\r\n"...)
	b = fmt.Appendf(b, "Content-Type: %s\r\n", contentType)
	return append(b, '\r', '\n')
}

// fit cuts or pads b to exactly size octets, keeping a final CRLF: the
// last body line is shortened or lengthened. A size below the header's
// keeps the whole header.
func fit(b []byte, size int) []byte {
	if len(b) == size {
		return b
	}
	if len(b) > size {
		end := max(size-2, headerEnd(b))
		b = append(b[:end], '\r', '\n')
		// A cut that leaves "\r" or a lone "." before the CRLF is harmless:
		// the message stays well formed for both protocols.
		if len(b) >= 3 && b[len(b)-3] == '\r' {
			b[len(b)-3] = 'x'
		}
		return b
	}
	b = b[:len(b)-2]
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '\r', '\n')
}

// headerEnd returns the offset just after the blank line of the header.
func headerEnd(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 4
		}
	}
	return len(b)
}

// SmallMessages returns the n messages of the small profile: sizes spread
// evenly between 3,800 and 4,200 octets (about 3.9 KiB), deterministic.
func SmallMessages(n int) [][]byte {
	out := make([][]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range out {
		out[i] = Message(i, 3800+rng.IntN(401))
	}
	return out
}

// MixedMessages returns n messages whose sizes are spread log-uniformly
// between minSize and maxSize octets (so most are small and a few are
// large), in a deterministic order; messages from 256 KiB up are MIME
// messages with an attachment.
func MixedMessages(n, minSize, maxSize int) [][]byte {
	out := make([][]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 2))
	lo, hi := math.Log(float64(minSize)), math.Log(float64(maxSize))
	for i := range out {
		size := int(math.Exp(lo + rng.Float64()*(hi-lo)))
		size = min(max(size, minSize), maxSize)
		if size >= 256<<10 {
			out[i] = LargeMessage(i, size)
		} else {
			out[i] = Message(i, size)
		}
	}
	return out
}

// TotalBytes returns the sum of the sizes of msgs.
func TotalBytes(msgs [][]byte) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m))
	}
	return n
}
