package mailaccess

import (
	"context"
	"io"

	"github.com/emersion/go-message"
	// Registers the character sets that go-message can decode (a
	// process-wide side effect: it sets message.CharsetReader).
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// Handler takes one message. Returning nil means "I have it safely",
// whatever the handler read of m.Body: the Fetcher reads what the handler
// left unread (to fingerprint the message), records the delivery in the
// State and may then delete or move the message on the server. A handler
// that stores messages must therefore read Body to its end, and check
// that read for errors, before it returns nil. Returning an error means
// "not taken": the message stays and the next run offers it again.
//
// The handler runs on the fetching goroutine; ctx is Fetch's context.
// A handler that panics ends the session without committing anything.
type Handler func(ctx context.Context, m *Message) error

// Message is one message handed to a Handler.
type Message struct {
	// Mailbox is the Name of the mailbox the message comes from.
	Mailbox string
	// Info is the message as listed.
	Info MessageInfo
	// Body streams the raw RFC 5322 bytes of the message, exactly as the
	// server sent them. Reading it may fail with the connection's error
	// or with ErrTooLarge; a handler that sees a read error must return
	// an error (the Fetcher then does not record the message either).
	Body io.Reader
}

// Parse parses the message with go-message as it streams from Body (so
// Body must not have been read before). Parsing never blocks delivery:
// a program that must keep every message stores the raw bytes first and
// parses a copy. Unknown charsets and transfer encodings are tolerated
// (the parts stay undecoded); other failures are returned, and the raw
// bytes are still the truth.
func (m *Message) Parse() (*mail.Reader, error) {
	return ParseMessage(m.Body)
}

// ParseMessage parses raw RFC 5322 bytes with go-message's mail reader,
// tolerating unknown charsets and transfer encodings at the top level
// (which mail.CreateReader alone refuses). The returned error, when not
// nil, says what go-message could not parse.
func ParseMessage(r io.Reader) (*mail.Reader, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, err
	}
	return mail.NewReader(e), nil
}
