// Package rawclient holds the raw baselines of the unimail benchmark: the
// least a Go client can do to take a whole mailbox over TLS, so that the
// library's figures can be given as a ratio to a limit measured on the same
// machine in the same run.
//
// Each client logs in, sends the whole fetch as one pipelined batch and
// discards the bytes while counting them:
//
//   - FetchIMAP sends UID FETCH 1:* BODY.PEEK[] and skips every literal;
//   - FetchPOP3 sends RETR 1 .. RETR n (n from STAT) in one write and reads
//     every answer, removing the dot-stuffing to count the message octets;
//   - ListIMAP sends UID FETCH 1:* (UID RFC822.SIZE), the least a client must
//     ask to learn that nothing is new while still seeing every message;
//   - ListIMAPAfter sends UID FETCH <n+1>:* (UID), the least a client that
//     remembers the highest UID it has seen must ask.
//
// They read the same bytes as the library does (the message octets as the
// server stores them) and check that they got the number of messages the
// caller expected. They keep nothing and parse nothing beyond the framing,
// so they are a lower bound on the time of a client, not a client to use.
package rawclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Config says where and as whom a raw client logs in.
type Config struct {
	// Addr is "host:port" of the implicit-TLS listener (IMAPS or POP3S).
	Addr string
	// TLSConfig is the client TLS configuration; it must verify the
	// server (the benchmark measures verified TLS, as a real client does).
	TLSConfig *tls.Config
	// Username and Password are the credentials. They are checked for CR,
	// LF and NUL before anything is sent and never appear in an error.
	Username, Password string
	// Folder is the IMAP folder; "" means INBOX. POP3 ignores it.
	Folder string
}

// Result is what one raw run read.
type Result struct {
	// Messages is the number of message bodies read (for ListIMAP: the
	// number of messages listed).
	Messages int
	// Bytes is the number of message octets: the sum of the IMAP literal
	// sizes, or of the POP3 message lines after dot-unstuffing (without
	// the terminating "."). For ListIMAP it is the sum of RFC822.SIZE.
	Bytes int64
}

// maxLine bounds a protocol line (not a message line): a longer one is a
// protocol violation.
const maxLine = 1 << 20

// readBuffer is the size of the buffered reader on the TLS connection.
const readBuffer = 64 << 10

// conn is one TLS connection with a buffered reader and a line buffer.
type conn struct {
	op   string
	c    net.Conn
	r    *bufio.Reader
	line []byte
	// secret is the password, removed from any server text kept in an
	// error (a server should never echo it, but the rule is absolute).
	secret string
}

// dial connects with implicit TLS and binds ctx to the connection: when
// ctx ends, pending I/O fails at once.
func dial(ctx context.Context, op string, cfg *Config) (*conn, func(), error) {
	if err := mailerr.CheckArg("username", cfg.Username); err != nil {
		return nil, nil, err
	}
	if err := mailerr.CheckArg("password", cfg.Password); err != nil {
		return nil, nil, err
	}
	if err := mailerr.CheckArg("folder", cfg.Folder); err != nil {
		return nil, nil, err
	}
	if cfg.TLSConfig == nil {
		return nil, nil, mailerr.New(op, mailaccess.ErrInvalidArgument, "", errors.New("a TLS configuration is required"))
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, mailerr.New(op, mailaccess.ErrConnection, "", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	tc := tls.Client(raw, cfg.TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, mailerr.New(op, mailaccess.ErrTLS, "", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	c := &conn{op: op, c: tc, r: bufio.NewReaderSize(tc, readBuffer), secret: cfg.Password}
	return c, func() { stop(); tc.Close() }, nil
}

// connErr turns a transport error into an ErrConnection error.
func (c *conn) connErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return mailerr.New(c.op, mailaccess.ErrConnection, "", err)
}

// protoErr is an ErrProtocol error with the (sanitized) offending text.
func (c *conn) protoErr(what string, text []byte) error {
	return mailerr.New(c.op, mailaccess.ErrProtocol, c.clean(text), errors.New(what))
}

// clean returns server text with the password removed and at most 200
// bytes, for an error.
func (c *conn) clean(text []byte) string {
	if len(text) > 200 {
		text = text[:200]
	}
	s := string(bytes.TrimRight(text, "\r\n"))
	if c.secret != "" {
		s = string(bytes.ReplaceAll([]byte(s), []byte(c.secret), []byte("REDACTED")))
	}
	return s
}

// write sends b in one write.
func (c *conn) write(b []byte) error {
	if _, err := c.c.Write(b); err != nil {
		return c.connErr(err)
	}
	return nil
}

// readLine returns the next protocol line with its line end. The slice is
// valid until the next read.
func (c *conn) readLine() ([]byte, error) {
	b, err := c.r.ReadSlice('\n')
	if err == nil {
		return b, nil
	}
	if err != bufio.ErrBufferFull {
		return nil, c.connErr(err)
	}
	c.line = append(c.line[:0], b...)
	for {
		b, err = c.r.ReadSlice('\n')
		if len(c.line)+len(b) > maxLine {
			return nil, c.protoErr("protocol line longer than "+strconv.Itoa(maxLine)+" octets", c.line)
		}
		c.line = append(c.line, b...)
		if err == nil {
			return c.line, nil
		}
		if err != bufio.ErrBufferFull {
			return nil, c.connErr(err)
		}
	}
}

// checkCount fails when want is not negative and differs from got.
func (c *conn) checkCount(got, want int) error {
	if want >= 0 && got != want {
		return mailerr.New(c.op, mailaccess.ErrProtocol, "", fmt.Errorf("got %d messages, want %d", got, want))
	}
	return nil
}
