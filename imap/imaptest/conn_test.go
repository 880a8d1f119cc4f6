package imaptest

import "testing"

func TestLiteralSuffix(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int64
		sync bool
		ok   bool
	}{
		{"A1 LOGIN {5}\r\n", 5, true, true},
		{"A1 LOGIN {5+}\r\n", 5, false, true},
		{"alice {0}\r\n", 0, true, true},
		{"A1 APPEND INBOX ~{123}\n", 123, true, true},
		{"A1 APPEND INBOX {1000000000000}\r\n", 1000000000000, true, true},
		{"A1 NOOP\r\n", 0, false, false},
		{"A1 SEARCH {}\r\n", 0, false, false},
		{"A1 SEARCH {+}\r\n", 0, false, false},
		{"A1 SEARCH {++5}\r\n", 0, false, false},
		{"A1 SEARCH {-5}\r\n", 0, false, false},
		{"A1 SEARCH {x}\r\n", 0, false, false},
		{"A1 SEARCH {5} \r\n", 0, false, false},
		{"A1 SEARCH 5}\r\n", 0, false, false},
	} {
		n, sync, ok := literalSuffix([]byte(tc.line))
		if n != tc.n || sync != tc.sync || ok != tc.ok {
			t.Errorf("literalSuffix(%q) = %d, %v, %v; want %d, %v, %v", tc.line, n, sync, ok, tc.n, tc.sync, tc.ok)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, tag, name, logged string
	}{
		{"A1 uid fetch 1:* (UID BODY.PEEK[])", "A1", "UID FETCH", "A1 uid fetch 1:* (UID BODY.PEEK[])"},
		{"A2 UID EXPUNGE 4", "A2", "UID EXPUNGE", "A2 UID EXPUNGE 4"},
		{"A3 LOGIN alice secret", "A3", "LOGIN", "A3 LOGIN [redacted]"},
		{"A3 login {5+}", "A3", "LOGIN", "A3 login [redacted]"},
		{"A4 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "A4", "AUTHENTICATE", "A4 AUTHENTICATE PLAIN [redacted]"},
		{"A5 AUTHENTICATE XOAUTH2", "A5", "AUTHENTICATE", "A5 AUTHENTICATE XOAUTH2"},
		{"A6 IDLE", "A6", "IDLE", "A6 IDLE"},
		{"A7 UID", "A7", "UID", "A7 UID"},
		{"garbage", "garbage", "", "garbage"},
		{"", "", "", ""},
	} {
		tag, name, logged := parseCommand(tc.line)
		if tag != tc.tag || name != tc.name || logged != tc.logged {
			t.Errorf("parseCommand(%q) = %q, %q, %q; want %q, %q, %q", tc.line, tag, name, logged, tc.tag, tc.name, tc.logged)
		}
	}
}

func TestParseXOAUTH2(t *testing.T) {
	for _, tc := range []struct {
		resp, name, token string
		ok                bool
	}{
		{"user=alice\x01auth=Bearer tok\x01\x01", "alice", "tok", true},
		{"auth=Bearer tok\x01user=alice\x01\x01", "alice", "tok", true},
		{"user=alice\x01auth=Bearer tok\x01", "", "", false},
		{"user=alice\x01auth=Basic tok\x01\x01", "", "", false},
		{"user=alice\x01\x01", "", "", false},
		{"user=\x01auth=Bearer tok\x01\x01", "", "", false},
		{"garbage\x01\x01", "", "", false},
	} {
		name, token, ok := parseXOAUTH2([]byte(tc.resp))
		if ok != tc.ok || (ok && (name != tc.name || token != tc.token)) {
			t.Errorf("parseXOAUTH2(%q) = %q, %q, %v", tc.resp, name, token, ok)
		}
	}
}
