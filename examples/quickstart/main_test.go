package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"laptop received 3 new message(s), deleted 3 from the server",
		"phone  received 0 new message(s)",
		"phone  received 3 new message(s)",
		"laptop received 0 new message(s), 3 already seen",
		"POP3 server: 0 messages",
		"IMAP server: 3 messages",
		"Lunch on Friday?",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
