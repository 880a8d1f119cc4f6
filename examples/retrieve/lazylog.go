package main

import (
	"context"
	"log/slog"
	"sync"
)

// lazyHandler puts off a handler's WithAttrs and WithGroup until a record
// passes through: slog's text handler formats attributes as soon as they
// are added, and the Fetcher adds a message's UID and size to its logger
// for every message, while at the default level (warnings) hardly any
// message logs anything.
type lazyHandler struct {
	base   slog.Handler // the handler at the root of the chain
	parent *lazyHandler // nil at the root
	attrs  []slog.Attr  // what this link adds: attributes,
	group  string       // or a group

	once     sync.Once
	resolved slog.Handler
}

func newLazyHandler(h slog.Handler) *lazyHandler { return &lazyHandler{base: h} }

// Enabled asks the root handler: attributes and groups do not change the
// level that slog's handlers log at.
func (h *lazyHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return &lazyHandler{base: h.base, parent: h, attrs: attrs}
}

func (h *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &lazyHandler{base: h.base, parent: h, group: name}
}

func (h *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.resolve().Handle(ctx, r)
}

// resolve builds, once, the handler with every attribute and group of the
// chain, in the order they were added.
func (h *lazyHandler) resolve() slog.Handler {
	h.once.Do(func() {
		switch {
		case h.parent == nil:
			h.resolved = h.base
		case h.group != "":
			h.resolved = h.parent.resolve().WithGroup(h.group)
		default:
			h.resolved = h.parent.resolve().WithAttrs(h.attrs)
		}
	})
	return h.resolved
}
