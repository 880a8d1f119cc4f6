package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/mailaccess"
)

// The account profile: a whole IMAP account of AccountFolders folders of
// AccountPerFolder small messages each, fetched on one connection, next
// to the same messages in one folder.
const (
	ProfileAccount   = "account"
	AccountFolders   = 20
	AccountPerFolder = 500
	// accountUser owns the account of many folders; benchUser's INBOX
	// holds the same messages in one folder.
	accountUser = "bob"
)

// Kinds of the account profile's clients.
const (
	// KindLibraryAccount is mailaccess.Fetcher.FetchAccount over
	// imap.DialAccount, every folder ("*"), with a handler that discards
	// the bytes.
	KindLibraryAccount = "library, whole account"
	// KindRetrieveAccount is examples/retrieve with the URL imaps://bob@host/*
	// into a Maildir++ tree.
	KindRetrieveAccount = "retrieve, whole account"
	// KindMbsyncAccount is mbsync with Patterns * (every folder) into a
	// tree of Maildirs.
	KindMbsyncAccount = "mbsync, Patterns *"
)

// isAccountKind reports whether kind fetches benchUser's account of many
// folders rather than one folder.
func isAccountKind(kind string) bool {
	return kind == KindLibraryAccount || kind == KindRetrieveAccount || kind == KindMbsyncAccount
}

// accountProfile is the account profile.
func accountProfile() Profile {
	return Profile{
		Name:        ProfileAccount,
		Description: fmt.Sprintf("%d folders of %d messages of about 3.9 KiB (an account), and the same %d messages in one folder, IMAP", AccountFolders, AccountPerFolder, AccountFolders*AccountPerFolder),
		Messages:    func() [][]byte { return SmallMessages(AccountFolders * AccountPerFolder) },
		Protocols:   []string{IMAP},
		Account:     true,
	}
}

// accountFolder is the name of folder i of the account: INBOX, then F02
// to F20.
func accountFolder(i int) string {
	if i == 0 {
		return "INBOX"
	}
	return fmt.Sprintf("F%02d", i+1)
}

// seedAccount seeds msgs into benchUser's INBOX and, split in order into
// AccountFolders folders, into accountUser's account.
func seedAccount(srv *Server, msgs [][]byte) error {
	if err := srv.Seed(benchUser, "INBOX", msgs); err != nil {
		return err
	}
	per := (len(msgs) + AccountFolders - 1) / AccountFolders
	for i := range AccountFolders {
		lo, hi := min(i*per, len(msgs)), min((i+1)*per, len(msgs))
		if err := srv.Seed(accountUser, accountFolder(i), msgs[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// LibraryAccount fetches every folder of the account at t with
// mailaccess.Fetcher.FetchAccount (KeepOnServer) over imap.DialAccount, on
// one connection, with a handler that copies each message to io.Discard.
// state is as for Library.
func LibraryAccount(ctx context.Context, t Target, password string, state mailaccess.State) (Outcome, error) {
	tc, err := t.TLSConfig()
	if err != nil {
		return Outcome{}, err
	}
	start := time.Now()
	a, err := imap.DialAccount(ctx, t.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{
		Auth: mailaccess.Auth{Username: t.User, Password: password}, TLSConfig: tc, Timeout: t.Timeout,
	}})
	if err != nil {
		return Outcome{}, err
	}
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: state}
	rep, err := f.FetchAccount(ctx, a, &mailaccess.Selection{Include: []string{"*"}}, func(_ context.Context, _ mailaccess.FolderInfo, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	tot := rep.Totals()
	out := Outcome{Messages: tot.Delivered, Bytes: tot.Bytes, Skipped: tot.Skipped, Elapsed: time.Since(start), Procs: runtime.GOMAXPROCS(0)}
	if err == nil && len(tot.Problems) > 0 {
		err = fmt.Errorf("%d message problem(s), the first: %w", len(tot.Problems), tot.Problems[0])
	}
	if err == nil && len(rep.Folders) != AccountFolders {
		err = fmt.Errorf("fetched %d folders, want %d", len(rep.Folders), AccountFolders)
	}
	return out, err
}

// accountTarget is t for accountUser.
func accountTarget(t Target) Target {
	t.User = accountUser
	return t
}

// checkMaildirTree fails unless the Maildir++ tree at dir (its top and
// every ".Folder" in it) holds exactly n messages in its new/ directories
// in AccountFolders Maildirs.
func checkMaildirTree(dir string, n int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	dirs := []string{dir}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(dir, e.Name()))
		}
	}
	total := 0
	for _, d := range dirs {
		m, err := os.ReadDir(filepath.Join(d, "new"))
		if err != nil {
			return err
		}
		total += len(m)
	}
	if total != n || len(dirs) != AccountFolders {
		return fmt.Errorf("the Maildir++ tree %s holds %d messages in %d folders, want %d in %d", dir, total, len(dirs), n, AccountFolders)
	}
	return nil
}

// mbsyncTree counts what mbsync pulled into the Maildirs under dir (one
// per folder), as mbsyncMaildir does for one.
func mbsyncTree(dir string) (Outcome, error) {
	var out Outcome
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out, err
	}
	folders := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		o, err := mbsyncMaildir(filepath.Join(dir, e.Name()))
		if err != nil {
			return out, err
		}
		folders++
		out.Messages += o.Messages
		out.Bytes += o.Bytes
	}
	if folders != AccountFolders {
		return out, fmt.Errorf("mbsync made %d Maildirs, want %d", folders, AccountFolders)
	}
	return out, nil
}

// accountCases lists the cases of the account profile: the raw fetch and
// the library over one folder of AccountFolders*AccountPerFolder messages,
// then the same messages as a whole account: the library (and its run
// with nothing new), retrieve and mbsync.
func (r *Runner) accountCases() []Case {
	out := []Case{
		{Kind: KindRaw, Proto: IMAP},
		{Kind: KindLibrary, Proto: IMAP},
		{Kind: KindLibraryAccount, Proto: IMAP},
		{Kind: KindLibraryAccount, Proto: IMAP, Phase: PhaseNoNew},
	}
	if r.Retrieve != "" {
		out = append(out, Case{Kind: KindRetrieve, Proto: IMAP}, Case{Kind: KindRetrieveAccount, Proto: IMAP})
	}
	if r.Mbsync != "" {
		out = append(out, Case{Kind: KindMbsync, Proto: IMAP}, Case{Kind: KindMbsyncAccount, Proto: IMAP})
	}
	return out
}

// accountFullState is the library's state of a complete run over the
// account, for its runs with nothing new.
func (m *measure) accountFullState() string { return filepath.Join(m.work, "state-account-full") }

// prepareAccountNoNew makes the library's state of a complete run over
// the account.
func (m *measure) prepareAccountNoNew(ctx context.Context) error {
	c := Case{Kind: KindLibraryAccount, Proto: IMAP}
	out, s, err := m.child(ctx, Job{Kind: KindLibraryAccount, Target: accountTarget(m.targets[IMAP]), StateFile: m.accountFullState()})
	if err != nil {
		return fmt.Errorf("preparing the state of a complete run over the account: %w", err)
	}
	if err := m.checkAll(c, out); err != nil {
		return err
	}
	m.r.logf("%s: library first run over the account into the no-new state: %.2fs", m.p.Name, s.Wall.Seconds())
	return nil
}

// oneAccount runs one case of the account profile against t, the account
// user's target.
func (m *measure) oneAccount(ctx context.Context, c Case, t Target) (Outcome, Sample, error) {
	switch c.Kind {
	case KindLibraryAccount:
		j := Job{Kind: KindLibraryAccount, Target: t}
		if c.Phase == PhaseNoNew {
			j.StateFile = m.accountFullState()
		}
		return m.child(ctx, j)
	case KindRetrieveAccount:
		dir := filepath.Join(m.work, "maildir-account")
		if err := os.RemoveAll(dir); err != nil {
			return Outcome{}, Sample{}, err
		}
		out, s, err := m.retrievePath(ctx, t, "/*", dir, 0)
		if err == nil {
			err = checkMaildirTree(dir, m.n)
		}
		return out, s, err
	case KindMbsyncAccount:
		return m.mbsyncFor(ctx, t, true)
	}
	return Outcome{}, Sample{}, fmt.Errorf("unknown account case %s", c)
}

// accountRatio is the report's line on the account profile: how the
// library's fetch of the whole account compares with its fetch of the
// same messages in one folder.
func accountRatio(r ProfileResult) string {
	one := r.Case(Case{Kind: KindLibrary, Proto: IMAP})
	all := r.Case(Case{Kind: KindLibraryAccount, Proto: IMAP})
	if one == nil || all == nil || one.Wall <= 0 {
		return ""
	}
	s := fmt.Sprintf("The library over the whole account of %d folders, on one connection, took %.2f times its time over the same messages in one folder", AccountFolders, float64(all.Wall)/float64(one.Wall))
	if one.InProc > 0 && all.InProc > 0 {
		s += fmt.Sprintf(" (%.2f in-process)", float64(all.InProc)/float64(one.InProc))
	}
	return s + "."
}
