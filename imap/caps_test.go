package imap

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCapabilitiesAfterLogin checks where the session's capabilities come
// from after login: from the [CAPABILITY ...] code of the login's tagged
// OK when the server sends one that differs from the capabilities before
// login (no CAPABILITY command), and from an explicit CAPABILITY command
// otherwise.
func TestCapabilitiesAfterLogin(t *testing.T) {
	const after = "IMAP4rev1 UIDPLUS MOVE IDLE ESEARCH"
	cases := []struct {
		name    string
		ok      string // the tagged OK of LOGIN after the tag
		ask     bool   // whether a CAPABILITY command must be sent
		wantCap string // a capability the session must report
	}{
		{"code with new capabilities", "OK [CAPABILITY " + after + "] logged in", false, "ESEARCH"},
		{"no code", "OK logged in", true, "ESEARCH"},
		{"code equal to before login", "OK [CAPABILITY " + scriptCaps + "] logged in", true, "ESEARCH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptServer(t, scriptCaps, func(c *scriptConn, tag, verb, rest string) bool {
				switch verb {
				case "LOGIN":
					c.send(tag + " " + tc.ok)
					return true
				case "CAPABILITY":
					c.send("* CAPABILITY " + after)
					c.send(tag + " OK done")
					return true
				}
				return false
			})
			mb := dialScript(t, s, 5*time.Second)
			asked := slices.ContainsFunc(s.commands(), func(l string) bool {
				_, verb, _ := strings.Cut(l, " ")
				return strings.EqualFold(verb, "CAPABILITY")
			})
			if asked != tc.ask {
				t.Errorf("CAPABILITY sent: %v, want %v (commands %q)", asked, tc.ask, s.commands())
			}
			if caps := mb.Describe().Capabilities; !slices.Contains(caps, tc.wantCap) {
				t.Errorf("capabilities %q lack %s", caps, tc.wantCap)
			}
		})
	}
}
