package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Profile is one benchmark workload: a mailbox content and the clients
// measured on it.
type Profile struct {
	// Name identifies the profile ("small", "mixed", "large",
	// "incremental-100000").
	Name string
	// Description says what the mailbox holds, in a few words.
	Description string
	// Messages builds the mailbox content (deterministic).
	Messages func() [][]byte
	// Protocols are the protocols measured.
	Protocols []string
	// Incremental measures, over IMAP with a file state, a first run that
	// delivers everything and a second run when nothing is new, instead of
	// a stateless fetch.
	Incremental bool
	// Size is the number of messages of an incremental profile.
	Size int
	// Account measures, over IMAP, the same messages in one folder of one
	// user and spread over the AccountFolders folders of another, fetched
	// as a whole account on one connection (see ProfileAccount).
	Account bool
	// Fleet measures package fleet over many accounts (see
	// ProfileFleet).
	Fleet bool
}

// Profile names accepted by ParseProfiles.
const (
	ProfileSmall       = "small"
	ProfileMixed       = "mixed"
	ProfileLarge       = "large"
	ProfileIncremental = "incremental"
)

// DefaultProfiles is the profile list of a default run.
var DefaultProfiles = []string{ProfileSmall, ProfileMixed, ProfileLarge, ProfileIncremental}

// DefaultIncrementalSizes are the mailbox sizes of the incremental profile.
var DefaultIncrementalSizes = []int{1000, 10000, 100000}

// Sizes of the profiles.
const (
	SmallCount   = 2000
	MixedCount   = 500
	MixedMin     = 1 << 10
	MixedMax     = 2 << 20
	LargeSize    = 100 << 20
	IncrementMsg = 4000 // octets of each message of the incremental profile
)

// ParseProfiles turns a comma-separated list of profile names ("small",
// "mixed", "large", "incremental", or "all"; "none" for no profile; and
// "account" and "fleet", which "all" does not include) into profiles, with the
// incremental profile expanded to one profile per size.
func ParseProfiles(list string, incrementalSizes []int) ([]Profile, error) {
	var out []Profile
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || name == "none" {
			continue
		}
		names := []string{name}
		if name == "all" {
			names = DefaultProfiles
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			switch n {
			case ProfileSmall:
				out = append(out, Profile{
					Name:        ProfileSmall,
					Description: fmt.Sprintf("%d messages of about 3.9 KiB", SmallCount),
					Messages:    func() [][]byte { return SmallMessages(SmallCount) },
					Protocols:   []string{IMAP, POP3},
				})
			case ProfileMixed:
				out = append(out, Profile{
					Name:        ProfileMixed,
					Description: fmt.Sprintf("%d messages from 1 KiB to 2 MiB, log-uniform", MixedCount),
					Messages:    func() [][]byte { return MixedMessages(MixedCount, MixedMin, MixedMax) },
					Protocols:   []string{IMAP, POP3},
				})
			case ProfileLarge:
				out = append(out, Profile{
					Name:        ProfileLarge,
					Description: "one message of 100 MiB",
					Messages:    func() [][]byte { return [][]byte{LargeMessage(0, LargeSize)} },
					Protocols:   []string{IMAP, POP3},
				})
			case ProfileIncremental:
				for _, size := range incrementalSizes {
					out = append(out, Profile{
						Name:        ProfileIncremental + "-" + strconv.Itoa(size),
						Description: fmt.Sprintf("%d messages of %d octets, IMAP, KeepOnServer with a file state", size, IncrementMsg),
						Messages: func() [][]byte {
							msgs := make([][]byte, size)
							for i := range msgs {
								msgs[i] = Message(i, IncrementMsg)
							}
							return msgs
						},
						Protocols:   []string{IMAP},
						Incremental: true,
						Size:        size,
					})
				}
			case ProfileAccount:
				out = append(out, accountProfile())
			case ProfileFleet:
				out = append(out, fleetProfile())
			default:
				return nil, fmt.Errorf("unknown profile %q (want small, mixed, large, incremental, account, fleet, all or none)", n)
			}
		}
	}
	return out, nil
}

// ParseSizes parses a comma-separated list of positive message counts.
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad message count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
