package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
)

// lazyHandler writes what the text handler writes, attributes and groups
// in the same order, and passes slog's handler tests.
func TestLazyHandler(t *testing.T) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	var lazy, eager bytes.Buffer
	use := func(l *slog.Logger) {
		l = l.With("mailbox", "imap://alice@host/INBOX")
		l.Debug("hidden", "x", 1)
		m := l.With("uid", "7/42", "size", 1234)
		m.Info("delivered")
		m.WithGroup("g").With("a", 1).WithGroup("h").Warn("nested", "b", 2)
		l.With().WithGroup("").Error("plain")
	}
	use(slog.New(newLazyHandler(slog.NewTextHandler(&lazy, opts))))
	use(slog.New(slog.NewTextHandler(&eager, opts)))
	if lazy.String() != eager.String() || strings.Contains(lazy.String(), "hidden") || !strings.Contains(lazy.String(), "uid=7/42 size=1234") {
		t.Fatalf("lazy handler wrote\n%s\nthe text handler\n%s", lazy.String(), eager.String())
	}

	// One logger used from several goroutines resolves its chain once.
	var buf syncBuffer
	l := slog.New(newLazyHandler(slog.NewTextHandler(&buf, opts))).With("k", "v")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { l.Info("m") })
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "level=INFO msg=m k=v\n"); n != 8 {
		t.Fatalf("%d of 8 lines: %q", n, buf.String())
	}

	var out bytes.Buffer
	err := slogtest.TestHandler(newLazyHandler(slog.NewJSONHandler(&out, nil)), func() []map[string]any {
		var ms []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
			m, err := parseJSON(line)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	})
	if err != nil {
		t.Fatal(err)
	}
}

func parseJSON(b []byte) (map[string]any, error) {
	var m map[string]any
	err := json.Unmarshal(b, &m)
	return m, err
}
