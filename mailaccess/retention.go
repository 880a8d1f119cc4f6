package mailaccess

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RetentionKind says what happens on the server to a message that the
// program has taken.
type RetentionKind int

// The retention kinds.
const (
	// Keep leaves the message on the server (IMAP style). The State
	// remembers it so that the next run does not deliver it again.
	Keep RetentionKind = iota
	// Delete deletes it from the server after delivery (classic POP).
	Delete
	// KeepForPeriod keeps it until a period after its first delivery, then
	// deletes it.
	KeepForPeriod
	// Move moves it to another folder (IMAP only).
	Move
)

// Retention is a retention policy. The zero value is KeepOnServer.
// Retention values are comparable.
type Retention struct {
	// Kind is what happens to a delivered message.
	Kind RetentionKind
	// Period is the period of KeepForPeriod.
	Period time.Duration
	// Folder is the destination of Move.
	Folder string
}

// KeepOnServer leaves delivered messages on the server.
var KeepOnServer = Retention{Kind: Keep}

// DeleteAfterFetch deletes each message from the server once the handler
// has taken it and the State has recorded it.
var DeleteAfterFetch = Retention{Kind: Delete}

// KeepFor keeps a delivered message on the server until d after its first
// delivery, then deletes it (Thunderbird's "leave on server for at most N
// days"). KeepFor(0) behaves like DeleteAfterFetch. It needs a State to know
// when a message was first delivered.
func KeepFor(d time.Duration) Retention {
	if d < 0 {
		d = 0
	}
	return Retention{Kind: KeepForPeriod, Period: d}
}

// MoveTo moves each delivered message to folder (IMAP only; on POP3 a
// Fetch fails with ErrUnsupported before anything is fetched).
func MoveTo(folder string) Retention { return Retention{Kind: Move, Folder: folder} }

// String returns the textual form that ParseRetention reads.
func (r Retention) String() string {
	switch r.Kind {
	case Keep:
		return "keep"
	case Delete:
		return "delete"
	case KeepForPeriod:
		if r.Period%(24*time.Hour) == 0 && r.Period > 0 {
			return "keep-for=" + strconv.FormatInt(int64(r.Period/(24*time.Hour)), 10) + "d"
		}
		return "keep-for=" + r.Period.String()
	case Move:
		return "move=" + r.Folder
	}
	return fmt.Sprintf("Retention(%d)", int(r.Kind))
}

// ParseRetention parses the textual form of a retention, for configuration
// files and flags: "keep", "delete", "keep-for=14d" (days) or any Go
// duration such as "keep-for=336h", and "move=Archive".
func ParseRetention(s string) (Retention, error) {
	bad := func(why string) (Retention, error) {
		return Retention{}, newError("parse retention", ErrInvalidArgument, "", fmt.Errorf("%q: %s", truncate(s, 64), why))
	}
	name, arg, hasArg := strings.Cut(s, "=")
	switch name {
	case "keep", "delete":
		if hasArg {
			return bad("takes no value")
		}
		if name == "keep" {
			return KeepOnServer, nil
		}
		return DeleteAfterFetch, nil
	case "keep-for":
		if !hasArg || arg == "" {
			return bad("needs a duration, such as keep-for=14d")
		}
		d, err := parseDays(arg)
		if err != nil {
			return bad(err.Error())
		}
		return KeepFor(d), nil
	case "move":
		if !hasArg || arg == "" {
			return bad("needs a folder, such as move=Archive")
		}
		if err := checkArg("folder", arg); err != nil {
			return bad("folder contains CR, LF or NUL")
		}
		return MoveTo(arg), nil
	}
	return bad("want keep, delete, keep-for=DURATION or move=FOLDER")
}

func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 32)
		if err != nil || days > 100*366 {
			return 0, fmt.Errorf("bad number of days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration")
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
