package pop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/unimail/unimail/mailaccess"
)

// FuzzParseErr checks the parsing of -ERR lines and their response codes
// (RFC 2449 section 8, RFC 3206): the code is upper case and holds no
// bracket, the error built from it has the kind that the code says and
// holds no control character.
func FuzzParseErr(f *testing.F) {
	for _, s := range []string{
		"-ERR", "-ERR ", "-ERR no", "-ERR [IN-USE] locked", "-ERR [in-use] x", "-ERR [SYS/TEMP] later", "-ERR [SYS/PERM]",
		"-ERR [AUTH] bad", "-ERR [LOGIN-DELAY] wait", "-ERR [", "-ERR []", "-ERR ]x[", "-ERR [A]]", "-ERR [SYS/TEMP]\x1b[2J", "-ERR [ß] x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r := parseErr(line)
		if strings.ContainsAny(r.code, "[]") && strings.Contains(r.code, "]") {
			t.Fatalf("%q: code %q holds ']'", line, r.code)
		}
		if r.code != strings.ToUpper(r.code) {
			t.Fatalf("%q: code %q not upper case", line, r.code)
		}
		e := serverErr("pop3 TEST", mailaccess.ErrServer, r)
		switch {
		case r.code == "IN-USE":
			if !errors.Is(e, mailaccess.ErrInUse) || !e.Temporary() {
				t.Fatalf("%q: %v", line, e)
			}
		case r.code == "SYS/TEMP", r.code == "LOGIN-DELAY":
			if !errors.Is(e, mailaccess.ErrUnavailable) || !e.Temporary() {
				t.Fatalf("%q: %v", line, e)
			}
		default:
			if !errors.Is(e, mailaccess.ErrServer) || e.Temporary() {
				t.Fatalf("%q: %v", line, e)
			}
		}
		if e.Err != nil {
			t.Fatalf("%q: the server's text is repeated in the cause: %v", line, e)
		}
		if strings.ContainsFunc(e.Error(), unicode.IsControl) {
			t.Fatalf("%q: control character in %q", line, e.Error())
		}
	})
}

// FuzzParseCaps checks the CAPA parser: every kept line is sanitized and
// non-empty, every keyword is found by has, and EXPIRE 0 is recognised
// only as the first argument of EXPIRE.
func FuzzParseCaps(f *testing.F) {
	for _, s := range []string{
		"USER\r\nUIDL\r\nPIPELINING\r\n", "SASL PLAIN xoauth2\r\n", "EXPIRE 0\r\n", "EXPIRE 0 USER\r\n", "expire never\r\n",
		"\r\n \r\n\t\r\n", "IMPLEMENTATION \x1b[31mred\r\n", "STLS\r\nSTLS\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var lines []string
		for l := range bytes.Lines(body) {
			lines = append(lines, string(bytes.TrimRight(l, "\r\n")))
		}
		c := parseCaps(lines)
		if !c.known {
			t.Fatal("not known")
		}
		for _, l := range c.lines {
			if l == "" || strings.ContainsFunc(l, unicode.IsControl) {
				t.Fatalf("kept line %q", l)
			}
			kw := strings.ToUpper(strings.Fields(l)[0])
			if !c.has(kw) {
				t.Fatalf("keyword %q of %q not found", kw, l)
			}
		}
		a := c.args["EXPIRE"]
		if c.expireZero() != (len(a) > 0 && a[0] == "0") {
			t.Fatalf("expireZero %v for %q", c.expireZero(), a)
		}
		for _, m := range c.args["SASL"] {
			if !c.sasl(strings.ToLower(m)) {
				t.Fatalf("SASL %q not found case-insensitively", m)
			}
		}
	})
}

// FuzzParseUIDL checks the UIDL parser: what it accepts has valid message
// numbers and unique ids of printable ASCII, one per line, and comes back
// the same after formatting; what it refuses is an error, never a panic.
func FuzzParseUIDL(f *testing.F) {
	for _, s := range []string{
		"1 a\r\n2 b\r\n", "", "1 a\r\n1 b\r\n", "1 a\r\n2 a\r\n", "0 a\r\n", "1\r\n", "1 a b\r\n", "01 a\r\n", "1  a\r\n",
		"999999999 z\r\n", "9999999999 z\r\n", "1 \x7f\r\n", "1 a\n2 b\n", " 1 a \r\n", "1\ta\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		uids, err := parseUIDL(body)
		if err != nil {
			return
		}
		if n := bytes.Count(body, []byte("\n")) + btoi(len(body) > 0 && body[len(body)-1] != '\n'); n != len(uids) {
			t.Fatalf("%d lines, %d entries", n, len(uids))
		}
		seen := map[string]bool{}
		var out bytes.Buffer
		for n, u := range uids {
			if n <= 0 || u == "" || len(u) > maxUIDLen || seen[u] {
				t.Fatalf("entry %d %q", n, u)
			}
			for i := 0; i < len(u); i++ {
				if u[i] < 0x21 || u[i] > 0x7e {
					t.Fatalf("uid %q", u)
				}
			}
			seen[u] = true
			fmt.Fprintf(&out, "%d %s\r\n", n, u)
		}
		again, err := parseUIDL(out.Bytes())
		if err != nil || len(again) != len(uids) {
			t.Fatalf("reformatted listing: %v", err)
		}
		for n, u := range uids {
			if again[n] != u {
				t.Fatalf("message %d: %q then %q", n, u, again[n])
			}
		}
	})
}

// FuzzParseLIST checks the LIST parser in the same way: valid numbers,
// sizes that are non-negative decimal integers, order kept.
func FuzzParseLIST(f *testing.F) {
	for _, s := range []string{
		"1 10\r\n2 20\r\n", "", "1 10 extra\r\n", "1 -1\r\n", "1 +1\r\n", "1 99999999999999999999\r\n", "1 9223372036854775807\r\n",
		"1 10\r\n1 10\r\n", "x 1\r\n", "1\r\n", "2 5\r\n1 6\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sizes, order, err := parseLIST(body)
		if err != nil {
			return
		}
		if len(order) != len(sizes) {
			t.Fatalf("%d numbers in order, %d sizes", len(order), len(sizes))
		}
		var out bytes.Buffer
		for _, n := range order {
			s, ok := sizes[n]
			if !ok || n <= 0 || s < 0 {
				t.Fatalf("message %d size %d", n, s)
			}
			out.WriteString(strconv.Itoa(n) + " " + strconv.FormatInt(s, 10) + "\r\n")
		}
		s2, o2, err := parseLIST(out.Bytes())
		if err != nil || len(o2) != len(order) {
			t.Fatalf("reformatted listing: %v", err)
		}
		for i, n := range order {
			if o2[i] != n || s2[n] != sizes[n] {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzSASLReply runs a whole login against a server that answers AUTH with
// arbitrary bytes, followed by a final -ERR: Dial ends quickly with
// success or a *mailaccess.Error, never panics, never hangs, and neither
// the error nor the trace holds the token or the password.
func FuzzSASLReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR [AUTH] no\r\n", "+ \r\n", "+\r\n", "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n", "+ !!!\r\n", "garbage\r\n",
		"+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n", "+OK", "", "-ERR [SYS/TEMP] later\r\n", "-ERR [IN-USE]\r\n",
		"+ " + strings.Repeat("QUFB", 3000) + "\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	const token, pw = "ya29.FUZZ-token-secret", "FUZZ-password-secret"
	f.Fuzz(func(t *testing.T, reply string, oauth bool) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close()
			drained := make(chan struct{})
			br := bufio.NewReader(server)
			io.WriteString(server, "+OK fuzz\r\n")
			if l, err := br.ReadString('\n'); err != nil || l != "CAPA\r\n" {
				return
			}
			io.WriteString(server, "+OK\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n")
			if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "AUTH ") {
				return
			}
			go func() { defer close(drained); _, _ = io.Copy(io.Discard, br) }()
			io.WriteString(server, reply+"\r\n-ERR end\r\n-ERR end\r\n-ERR end\r\n")
			<-drained
		}()
		defer func() { client.Close(); <-done }()
		var trace bytes.Buffer
		o := &Options{
			DialOptions: mailaccess.DialOptions{
				Auth:        mailaccess.Auth{Username: "alice", Password: pw, Mechanism: "PLAIN"},
				Security:    mailaccess.SecurityInsecureCleartext,
				Timeout:     2 * time.Second,
				Trace:       &trace,
				DialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil },
			},
		}
		if oauth {
			o.Auth = mailaccess.Auth{Username: "alice", Mechanism: "XOAUTH2", Token: func(context.Context) (string, error) { return token, nil }}
		}
		// A hang crashes the worker with every stack, so that the fuzzer
		// keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("login hung on reply %q:\n%s", reply, buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		start := time.Now()
		mb, err := Dial(t.Context(), "127.0.0.1:110", o)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
		if err == nil {
			mb.Abort()
		} else {
			var e *mailaccess.Error
			if !errors.As(err, &e) || e.Kind == nil {
				t.Fatalf("untyped error %v", err)
			}
		}
		for _, sec := range []string{token, pw} {
			if err != nil && strings.Contains(err.Error()+fmt.Sprintf("%#v", err), sec) {
				t.Fatalf("secret in error %v", err)
			}
			if strings.Contains(trace.String(), sec) {
				t.Fatalf("secret in trace:\n%s", trace.String())
			}
		}
	})
}
