package rawclient

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// FetchIMAP logs in to the IMAPS server, selects the folder and sends
// UID FETCH 1:* BODY.PEEK[], discarding every body literal; then it logs
// out. It fails with ErrProtocol unless exactly want bodies came back
// (want < 0 accepts any number). \Seen is not set, nothing is changed on
// the server.
func FetchIMAP(ctx context.Context, cfg Config, want int) (Result, error) {
	return imapRun(ctx, cfg, want, "raw imap fetch", "UID FETCH 1:* BODY.PEEK[]")
}

// ListIMAP logs in to the IMAPS server, selects the folder and sends
// UID FETCH 1:* (UID RFC822.SIZE), counting the messages and adding up
// their sizes; then it logs out. It fails with ErrProtocol unless exactly
// want messages were listed (want < 0 accepts any number).
func ListIMAP(ctx context.Context, cfg Config, want int) (Result, error) {
	return imapRun(ctx, cfg, want, "raw imap list", "UID FETCH 1:* (UID RFC822.SIZE)")
}

// ListIMAPAfter logs in to the IMAPS server, selects the folder and sends
// UID FETCH <after+1>:* (UID), the least a client that remembers the
// highest UID it has seen must ask to learn what is new; then it logs out.
// Messages counts the answers with a UID above after (a server answers
// "n:*" past the end with the last message, which is not new). It fails
// with ErrProtocol unless exactly want new messages were found (want < 0
// accepts any number).
func ListIMAPAfter(ctx context.Context, cfg Config, after uint32, want int) (Result, error) {
	return imapRun(ctx, cfg, want, "raw imap list new", "UID FETCH "+strconv.FormatUint(uint64(after)+1, 10)+":* (UID)", after)
}

func imapRun(ctx context.Context, cfg Config, want int, op, fetch string, after ...uint32) (Result, error) {
	c, closeConn, err := dial(ctx, op, &cfg)
	if err != nil {
		return Result{}, err
	}
	defer closeConn()
	line, err := c.readLine()
	if err != nil {
		return Result{}, err
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		return Result{}, c.protoErr("unexpected greeting", line)
	}
	folder := cfg.Folder
	if folder == "" {
		folder = "INBOX"
	}
	if err := c.imapCommand("a1", "LOGIN "+quote(cfg.Username)+" "+quote(cfg.Password), nil); err != nil {
		return Result{}, loginErr(err)
	}
	if err := c.imapCommand("a2", "SELECT "+quote(folder), nil); err != nil {
		return Result{}, err
	}
	var res Result
	list := strings.Contains(fetch, "RFC822.SIZE")
	err = c.imapCommand("a3", fetch, func(line []byte, literal int64) error {
		if len(after) > 0 {
			if uid, ok := fetchUID(line); ok && uid > after[0] {
				res.Messages++
			}
			return nil
		}
		if list {
			if n, ok := sizeOf(line); ok {
				res.Messages++
				res.Bytes += n
			}
			return nil
		}
		if literal >= 0 && bytes.HasPrefix(line, []byte("* ")) && bytes.HasSuffix(bytes.TrimRight(line[:bytes.LastIndexByte(line, '{')], " "), []byte("BODY[]")) {
			res.Messages++
			res.Bytes += literal
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := c.imapCommand("a4", "LOGOUT", nil); err != nil {
		return res, err
	}
	return res, c.checkCount(res.Messages, want)
}

// loginErr turns a NO to LOGIN into ErrAuth.
func loginErr(err error) error {
	var e *mailaccess.Error
	if errors.As(err, &e) && e.Kind == mailaccess.ErrServer {
		e.Kind = mailaccess.ErrAuth
	}
	return err
}

// imapCommand sends one tagged command and reads every response up to its
// tagged status, which must be OK. Every literal is skipped; onLine (when
// not nil) sees each response line first, with the size of the literal
// that follows it, or -1.
func (c *conn) imapCommand(tag, cmd string, onLine func(line []byte, literal int64) error) error {
	if err := c.write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		return err
	}
	prefix := []byte(tag + " ")
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(line, prefix) {
			status := line[len(prefix):]
			if bytes.HasPrefix(status, []byte("OK")) {
				return nil
			}
			verb := cmd
			if i := strings.IndexByte(verb, ' '); i > 0 {
				verb = verb[:i]
			}
			return mailerr.New(c.op+" "+verb, mailaccess.ErrServer, c.clean(status), nil)
		}
		// A response may carry several literals, each continuing the line.
		for {
			n := literalSize(line)
			if onLine != nil {
				if err := onLine(line, n); err != nil {
					return err
				}
			}
			if n < 0 {
				break
			}
			if _, err := c.r.Discard(int(n)); err != nil {
				return c.connErr(err)
			}
			if line, err = c.readLine(); err != nil {
				return err
			}
		}
	}
}

// literalSize returns n when line ends with "{n}\r\n" (or "{n+}\r\n"), and
// -1 otherwise.
func literalSize(line []byte) int64 {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if len(line) < 3 || line[len(line)-1] != '}' {
		return -1
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return -1
	}
	digits := bytes.TrimSuffix(line[i+1:len(line)-1], []byte("+"))
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// sizeOf returns the RFC822.SIZE of an untagged FETCH response line.
func sizeOf(line []byte) (int64, bool) {
	return fetchNumber(line, "RFC822.SIZE ")
}

// fetchUID returns the UID of an untagged FETCH response line.
func fetchUID(line []byte) (uint32, bool) {
	n, ok := fetchNumber(line, "UID ")
	if !ok || n < 1 || n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// fetchNumber returns the number after key in an untagged FETCH response
// line.
func fetchNumber(line []byte, key string) (int64, bool) {
	if !bytes.HasPrefix(line, []byte("* ")) || !bytes.Contains(line, []byte(" FETCH ")) {
		return 0, false
	}
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// quote makes an IMAP quoted string (the value was checked for CR, LF and
// NUL before).
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}
