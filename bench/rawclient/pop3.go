package rawclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strconv"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// FetchPOP3 logs in to the POP3S server with USER and PASS, learns the
// number of messages n from STAT, sends RETR 1 to RETR n in one write, and
// reads every answer, discarding the message lines; then it sends QUIT.
// Nothing is deleted. It fails with ErrProtocol unless exactly want
// messages came back (want < 0 accepts any number).
//
// The RETRs are written by a second goroutine while the answers are read,
// so that a long batch cannot deadlock on full socket buffers.
func FetchPOP3(ctx context.Context, cfg Config, want int) (Result, error) {
	const op = "raw pop3 fetch"
	c, closeConn, err := dial(ctx, op, &cfg)
	if err != nil {
		return Result{}, err
	}
	defer closeConn()
	if _, err := c.popStatus("greeting"); err != nil {
		return Result{}, err
	}
	if err := c.popCommand("USER "+cfg.Username, "USER"); err != nil {
		return Result{}, authErr(err)
	}
	if err := c.popCommand("PASS "+cfg.Password, "PASS"); err != nil {
		return Result{}, authErr(err)
	}
	if err := c.write([]byte("STAT\r\n")); err != nil {
		return Result{}, err
	}
	stat, err := c.popStatus("STAT")
	if err != nil {
		return Result{}, err
	}
	f := bytes.Fields(stat)
	if len(f) < 2 {
		return Result{}, c.protoErr("STAT answer without a count", stat)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil || n < 0 {
		return Result{}, c.protoErr("STAT answer without a count", stat)
	}
	if err := c.checkCount(n, want); err != nil {
		return Result{}, err
	}

	var batch []byte
	for i := 1; i <= n; i++ {
		batch = append(batch, "RETR "...)
		batch = strconv.AppendInt(batch, int64(i), 10)
		batch = append(batch, '\r', '\n')
	}
	written := make(chan error, 1)
	go func() { written <- c.write(batch) }()

	var res Result
	for i := 1; i <= n; i++ {
		if _, err := c.popStatus("RETR"); err != nil {
			closeConn() // unblocks the writer
			<-written
			return res, err
		}
		size, err := c.discardMultiline()
		if err != nil {
			closeConn()
			<-written
			return res, err
		}
		res.Messages++
		res.Bytes += size
	}
	if err := <-written; err != nil {
		return res, err
	}
	if err := c.popCommand("QUIT", "QUIT"); err != nil {
		return res, err
	}
	return res, c.checkCount(res.Messages, want)
}

// authErr turns a -ERR to USER or PASS into ErrAuth.
func authErr(err error) error {
	var e *mailaccess.Error
	if errors.As(err, &e) && e.Kind == mailaccess.ErrServer {
		e.Kind = mailaccess.ErrAuth
	}
	return err
}

// popCommand sends one command (checked for CR, LF and NUL) and reads its
// one-line status, which must be +OK. verb names it in errors, so that an
// argument (such as the password) never appears there.
func (c *conn) popCommand(cmd, verb string) error {
	if err := mailerr.CheckArg(verb, cmd); err != nil {
		return err
	}
	if err := c.write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	_, err := c.popStatus(verb)
	return err
}

// popStatus reads a status line; -ERR is ErrServer with the server's text.
func (c *conn) popStatus(verb string) ([]byte, error) {
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(line, []byte("+OK")):
		return line, nil
	case bytes.HasPrefix(line, []byte("-ERR")):
		return nil, mailerr.New(c.op+" "+verb, mailaccess.ErrServer, c.clean(line), nil)
	}
	return nil, c.protoErr("status line is neither +OK nor -ERR", line)
}

// discardMultiline reads a multi-line answer up to its terminating ".",
// and returns the number of octets of its lines after dot-unstuffing (RFC
// 1939 section 3), line ends included. A line longer than the reader's
// buffer is read in pieces.
func (c *conn) discardMultiline() (int64, error) {
	var n int64
	atStart := true
	for {
		b, err := c.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return n, c.connErr(err)
		}
		if atStart && len(b) > 0 && b[0] == '.' {
			if err == nil && (len(b) == 3 && b[1] == '\r' || len(b) == 2) {
				return n, nil // ".\r\n" (or a bare ".\n") ends the answer
			}
			b = b[1:]
		}
		n += int64(len(b))
		atStart = err == nil
	}
}
