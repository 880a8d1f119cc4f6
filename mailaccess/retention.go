package mailaccess

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/unimail/unimail/internal/safetext"
)

// Retention is what happens on the server to a message that the program
// has taken. Its value is its textual form, the one that configuration
// files and flags use and that ParseRetention reads: "keep", "delete",
// "keep-for=14d" or "move=Archive". Build one with the constants, KeepFor
// and MoveTo, or ParseRetention; values are comparable, and equal
// policies are equal values. The zero value "" is no choice at all: a
// Fetcher treats it as KeepOnServer, the retention that can lose nothing.
type Retention string

const (
	// KeepOnServer leaves delivered messages on the server (IMAP style);
	// the State remembers them, so that the next run does not deliver them
	// again.
	KeepOnServer Retention = "keep"
	// DeleteAfterFetch deletes each message from the server once the
	// handler has taken it and the State has recorded it (classic POP).
	DeleteAfterFetch Retention = "delete"
)

const (
	keepForPrefix = "keep-for="
	movePrefix    = "move="
	day           = 24 * time.Hour
	maxPeriod     = 100 * 366 * day
)

// KeepFor keeps a delivered message on the server until d after its first
// delivery, then deletes it (Thunderbird's "leave on server for at most N
// days"). KeepFor(0) deletes at the first run after delivery, as
// DeleteAfterFetch does; a negative d is taken as 0. It needs a State to
// know when a message was first delivered.
func KeepFor(d time.Duration) Retention {
	d = max(d, 0)
	if d > 0 && d%day == 0 {
		return Retention(keepForPrefix + strconv.FormatInt(int64(d/day), 10) + "d")
	}
	return Retention(keepForPrefix + d.String())
}

// MoveTo moves each delivered message to folder (IMAP only: on POP3 a
// Fetch fails with ErrUnsupported before anything is fetched). A folder
// that is empty or holds CR, LF or NUL makes Fetch fail with
// ErrInvalidArgument before anything is fetched.
func MoveTo(folder string) Retention { return Retention(movePrefix + folder) }

// String returns the textual form.
func (r Retention) String() string { return string(r) }

// Period returns the period of a KeepFor retention, and 0 for the others.
func (r Retention) Period() time.Duration {
	p, _ := r.policy()
	return p.period
}

// Folder returns the folder of a MoveTo retention, and "" for the others.
func (r Retention) Folder() string {
	if f, ok := strings.CutPrefix(string(r), movePrefix); ok {
		return f
	}
	return ""
}

// policyKind is what a retention does, for the Fetcher's switch.
type policyKind int

const (
	policyKeep policyKind = iota
	policyDelete
	policyKeepFor
	policyMove
)

// policy is a Retention taken apart.
type policy struct {
	kind   policyKind
	period time.Duration
	folder string
}

// policy takes r apart; the zero Retention is KeepOnServer. The error
// says what is wrong with a value that no constructor makes.
func (r Retention) policy() (policy, error) {
	switch {
	case r == "" || r == KeepOnServer:
		return policy{kind: policyKeep}, nil
	case r == DeleteAfterFetch:
		return policy{kind: policyDelete}, nil
	case strings.HasPrefix(string(r), keepForPrefix):
		d, err := parsePeriod(string(r)[len(keepForPrefix):])
		return policy{kind: policyKeepFor, period: d}, err
	case strings.HasPrefix(string(r), movePrefix):
		folder := r.Folder()
		if folder == "" {
			return policy{}, errors.New("move needs a folder, such as move=Archive")
		}
		if err := safetext.Check("the folder", folder); err != nil {
			return policy{}, err
		}
		return policy{kind: policyMove, folder: folder}, nil
	}
	return policy{}, errors.New("want keep, delete, keep-for=DURATION or move=FOLDER")
}

// ParseRetention reads the textual form of a retention, as people write
// it in configuration files and flags: "keep", "delete",
// "keep-for=DURATION" and "move=FOLDER". Names are read in any letter
// case; a duration is a number of days ("14d") or weeks ("2w"), or a Go
// duration ("336h", "1h30m"); the folder is kept as written. The result
// is in canonical form ("KEEP-FOR=2W" gives KeepFor(14 days), whose text
// is "keep-for=14d"). On error it returns the zero Retention and an error
// that matches ErrInvalidArgument and says what was wrong.
func ParseRetention(s string) (Retention, error) {
	bad := func(why string) (Retention, error) {
		return "", newError("parse retention", ErrInvalidArgument, "", fmt.Errorf("%q: %s", truncate(safetext.Sanitize(s), 64), why))
	}
	name, arg, hasArg := strings.Cut(strings.TrimSpace(s), "=")
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "keep", "delete":
		if hasArg {
			return bad(strings.ToLower(name) + " takes no value")
		}
		if strings.EqualFold(name, "keep") {
			return KeepOnServer, nil
		}
		return DeleteAfterFetch, nil
	case "keep-for":
		if !hasArg || strings.TrimSpace(arg) == "" {
			return bad("keep-for needs a duration, such as keep-for=14d")
		}
		d, err := parsePeriod(strings.TrimSpace(arg))
		if err != nil {
			return bad(err.Error())
		}
		return KeepFor(d), nil
	case "move":
		if !hasArg || arg == "" {
			return bad("move needs a folder, such as move=Archive")
		}
		if err := safetext.Check("the folder", arg); err != nil {
			return bad(err.Error())
		}
		return MoveTo(arg), nil
	case "":
		return bad("empty; want keep, delete, keep-for=DURATION or move=FOLDER")
	}
	return bad("unknown retention " + strconv.Quote(truncate(safetext.Sanitize(name), 32)) + "; want keep, delete, keep-for=DURATION or move=FOLDER")
}

// parsePeriod reads "14d", "2w" or a Go duration, in any letter case.
func parsePeriod(s string) (time.Duration, error) {
	lower := strings.ToLower(s)
	for suffix, unit := range map[string]time.Duration{"d": day, "w": 7 * day} {
		if n, ok := strings.CutSuffix(lower, suffix); ok {
			count, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("bad number %q before %q", truncate(n, 16), suffix)
			}
			if d := time.Duration(count) * unit; d <= maxPeriod {
				return d, nil
			}
			return 0, errors.New("period longer than 100 years")
		}
	}
	d, err := time.ParseDuration(lower)
	if err != nil {
		return 0, errors.New("bad duration: want days (14d), weeks (2w) or a Go duration (336h)")
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	if d > maxPeriod {
		return 0, errors.New("period longer than 100 years")
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
