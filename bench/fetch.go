package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/unimail/unimail/bench/rawclient"
	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/pop"
)

// Protocols.
const (
	IMAP = "imap"
	POP3 = "pop3"
)

// Kinds of measured clients that run inside the benchmark's own process
// (or its child process).
const (
	// KindRaw is the raw baseline: rawclient.FetchIMAP or FetchPOP3.
	KindRaw = "raw"
	// KindRawList is the raw listing baseline: rawclient.ListIMAP.
	KindRawList = "raw-list"
	// KindRawNew is the raw baseline of a run with nothing new:
	// rawclient.ListIMAPAfter with the highest UID of the mailbox.
	KindRawNew = "raw-new"
	// KindLibrary is mailaccess.Fetcher over pop.Dial or imap.Dial, with a
	// handler that discards the bytes.
	KindLibrary = "library"
	// KindLibraryOneThread is KindLibrary in a process limited to one
	// thread running Go code (GOMAXPROCS=1), as examples/retrieve runs:
	// it shows what the hand-over of every message between go-imap's
	// reader goroutine and the caller's costs on a machine whose other
	// CPU serves the mail.
	KindLibraryOneThread = "library, GOMAXPROCS=1"
	// KindRetrieve is examples/retrieve into a Maildir, run as its own
	// process.
	KindRetrieve = "retrieve"
	// KindMbsync is mbsync (isync) pulling the INBOX into a fresh Maildir,
	// run as its own process (IMAP only; see Runner.Mbsync).
	KindMbsync = "mbsync"
)

// Target says where a client connects and what it must find.
type Target struct {
	// Proto is IMAP or POP3.
	Proto string `json:"proto"`
	// Addr is the implicit-TLS address ("127.0.0.1:port").
	Addr string `json:"addr"`
	// CAFile is the PEM file of the server's certificate, the only one
	// trusted.
	CAFile string `json:"ca_file"`
	// User is the login name; the password is passed separately, never on
	// a command line.
	User string `json:"user"`
	// Timeout, when not zero, is the library's idle timeout
	// (imap.Options.Timeout, pop.Options.Timeout, retrieve's -timeout)
	// instead of its default. The raw clients have none.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// TLSConfig returns a TLS client configuration that trusts only the
// certificate in t.CAFile, with verification on and ServerName 127.0.0.1.
func (t Target) TLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", t.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// Outcome is what one measured fetch did.
type Outcome struct {
	// Messages is the number of messages delivered (raw: read; raw-list:
	// listed).
	Messages int `json:"messages"`
	// Bytes is the number of message octets delivered (raw-list: the sum
	// of the listed sizes).
	Bytes int64 `json:"bytes"`
	// Skipped is the number of messages not delivered because the state
	// said they were delivered before (library and retrieve only).
	Skipped int `json:"skipped"`
	// Elapsed is the time from before the connection to after the session
	// ended, inside the process that fetched.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Procs is the GOMAXPROCS the fetch ran with (raw and library).
	Procs int `json:"procs,omitempty"`
}

// Raw runs the raw baseline of the given kind (KindRaw, KindRawList or
// KindRawNew) against t, expecting want messages (for KindRawNew: want new
// messages above UID after).
func Raw(ctx context.Context, kind string, t Target, password string, want int, after uint32) (Outcome, error) {
	tc, err := t.TLSConfig()
	if err != nil {
		return Outcome{}, err
	}
	cfg := rawclient.Config{Addr: t.Addr, TLSConfig: tc, Username: t.User, Password: password}
	start := time.Now()
	var res rawclient.Result
	switch {
	case kind == KindRaw && t.Proto == IMAP:
		res, err = rawclient.FetchIMAP(ctx, cfg, want)
	case kind == KindRaw && t.Proto == POP3:
		res, err = rawclient.FetchPOP3(ctx, cfg, want)
	case kind == KindRawList && t.Proto == IMAP:
		res, err = rawclient.ListIMAP(ctx, cfg, want)
	case kind == KindRawNew && t.Proto == IMAP:
		res, err = rawclient.ListIMAPAfter(ctx, cfg, after, want)
	default:
		return Outcome{}, fmt.Errorf("no raw client %s for %s", kind, t.Proto)
	}
	return Outcome{Messages: res.Messages, Bytes: res.Bytes, Elapsed: time.Since(start)}, err
}

// Library fetches the whole mailbox at t with mailaccess.Fetcher
// (KeepOnServer) over imap.Dial or pop.Dial, with a handler that copies
// each message to io.Discard. state is the delivery state: nil (no memory,
// every message is delivered) or, for example, a *mailaccess.FileState.
func Library(ctx context.Context, t Target, password string, state mailaccess.State) (Outcome, error) {
	tc, err := t.TLSConfig()
	if err != nil {
		return Outcome{}, err
	}
	auth := mailaccess.Auth{Username: t.User, Password: password}
	start := time.Now()
	var mb mailaccess.Mailbox
	switch t.Proto {
	case IMAP:
		m, err := imap.Dial(ctx, t.Addr, &imap.Options{DialOptions: mailaccess.DialOptions{Auth: auth, TLSConfig: tc, Timeout: t.Timeout}})
		if err != nil {
			return Outcome{}, err
		}
		mb = m
	case POP3:
		m, err := pop.Dial(ctx, t.Addr, &pop.Options{DialOptions: mailaccess.DialOptions{Auth: auth, TLSConfig: tc, Timeout: t.Timeout}})
		if err != nil {
			return Outcome{}, err
		}
		mb = m
	default:
		return Outcome{}, fmt.Errorf("unknown protocol %q", t.Proto)
	}
	f := &mailaccess.Fetcher{Retention: mailaccess.KeepOnServer, State: state}
	rep, err := f.Fetch(ctx, mb, func(_ context.Context, m *mailaccess.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	out := Outcome{Messages: rep.Delivered, Bytes: rep.Bytes, Skipped: rep.Skipped, Elapsed: time.Since(start), Procs: runtime.GOMAXPROCS(0)}
	if err == nil && len(rep.Problems) > 0 {
		err = fmt.Errorf("%d message problem(s), the first: %w", len(rep.Problems), rep.Problems[0])
	}
	return out, err
}

// Job is one measured fetch run in a child process: the child reads it as
// JSON on its standard input and the password from the environment
// variable PasswordEnv.
type Job struct {
	// Kind is KindRaw, KindRawList, KindRawNew, KindLibrary,
	// KindLibraryOneThread or KindLibraryAccount (every folder of the
	// Target's user, see LibraryAccount).
	Kind string `json:"kind"`
	// Target is where to fetch from.
	Target Target `json:"target"`
	// Want is the number of messages the raw clients must get.
	Want int `json:"want"`
	// After is the UID above which KindRawNew looks for new messages.
	After uint32 `json:"after,omitempty"`
	// StateFile, for KindLibrary, is a mailaccess.FileState journal to
	// use; "" means a nil State.
	StateFile string `json:"state_file,omitempty"`
	// CPUProfile, when set, is a file to write a CPU profile of the fetch
	// into.
	CPUProfile string `json:"cpu_profile,omitempty"`
}

// PasswordEnv is the environment variable that carries the password to a
// child process (the same one that examples/retrieve reads).
const PasswordEnv = "UNIMAIL_PASSWORD"

// RunJob runs one job in this process and returns its outcome.
func RunJob(ctx context.Context, j Job, password string) (out Outcome, err error) {
	var state mailaccess.State
	if j.StateFile != "" {
		fs, err := mailaccess.OpenFileState(j.StateFile)
		if err != nil {
			return Outcome{}, err
		}
		defer func() {
			if cerr := fs.Close(); err == nil {
				err = cerr
			}
		}()
		state = fs
	}
	if j.CPUProfile != "" {
		f, err := os.Create(j.CPUProfile)
		if err != nil {
			return Outcome{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return Outcome{}, err
		}
		defer pprof.StopCPUProfile()
	}
	switch j.Kind {
	case KindRaw, KindRawList, KindRawNew:
		return Raw(ctx, j.Kind, j.Target, password, j.Want, j.After)
	case KindLibrary:
		return Library(ctx, j.Target, password, state)
	case KindLibraryOneThread:
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		return Library(ctx, j.Target, password, state)
	case KindLibraryAccount:
		return LibraryAccount(ctx, j.Target, password, state)
	}
	return Outcome{}, errors.New("unknown job kind " + j.Kind)
}
