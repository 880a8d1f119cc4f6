// Command retrieve fetches mail from a POP3 or IMAP server into a local
// Maildir or mbox, with an explicit retention policy, and never loses a
// message: a message is deleted or moved on the server only once it is
// durable on disk and recorded in the state file.
//
// Messages are made durable in groups (group commit), as
// mailaccess.Fetcher gathers them (-batch messages, 8 MiB or one second,
// whichever comes first). Each message is written into the Maildir's
// tmp/ without a sync (for an mbox: quoted into a temporary file). At
// the end of the group one syncfs of the Maildir's file system (on Linux
// 5.8 and later; elsewhere each file is fsynced as it is written) makes
// the files durable, they are renamed into new/ and new/ is fsynced once
// (an mbox is locked, the group appended, the file fsynced once and
// unlocked); then one write and fsync of the state file records the
// group. Only then does the retention apply to it, and deletions are
// sent at the end of the run. If making a group durable fails, nothing
// of it appears in new/ (the mbox is cut back to its size before the
// group), its messages stay on the server, the run ends with exit
// status 5, and the next run delivers them. A run killed before the end
// of a group leaves its Maildir files in tmp/, where mail readers do not
// look, and nothing in an mbox: the next run delivers those messages
// once. Only a run that stops between publishing a group (the renames
// into new/, the append to the mbox) and the state's fsync leaves that
// group's messages twice after the next run.
//
// Usage:
//
//	go run ./examples/retrieve [flags] URL
//
// URL is pop3s://user@host[:port], pop3://user@host[:port] (STLS
// required), imaps://user@host[:port][/folder] or imap://... (STARTTLS
// required); user;AUTH=MECH@host picks the authentication mechanism
// (PLAIN, LOGIN, APOP, XOAUTH2, OAUTHBEARER). The password comes from the
// environment variable UNIMAIL_PASSWORD or from -password-file, never from
// a flag value; with -oauth2-token-file or -oauth2-token-command an OAuth2
// access token is used instead (XOAUTH2 unless the URL says
// ;AUTH=OAUTHBEARER), read afresh at each login.
//
// With a folder pattern as the URL's path (imaps://user@host/* for the
// whole account, .../Archive/% for the children of Archive: IMAP LIST
// patterns, "*" across levels and "%" within one), retrieve fetches every
// folder that it matches, less those of each -exclude PATTERN and the
// \Junk and \Trash folders, one after the other on one connection.
// -maildir DIR is then a Maildir++ tree: INBOX at the top, every other
// folder a sub-Maildir ".Sent", ".Archive.2024" (the hierarchy separator
// becomes "."; a ".", "/", "%", "\" or control character inside a level is
// written %XX, an empty level "%-", so that every name is one safe file
// name and reads back; a name too long is cut, ends with "%~" and a hash,
// and its directory holds the full name in .unimail-folder-name). -mbox DIR
// is a directory of mbox files named the same way (INBOX for the inbox).
// The summary line ends with folders=N; a folder deleted on the server
// since the last run is reported on stderr (its records are kept), a
// renamed folder's messages are recognised and not delivered again, and a
// pattern that matches no folder is an error.
//
// Exactly one of -maildir DIR and -mbox FILE says where the mail goes.
// On a terminal a progress bar on stderr shows the messages and bytes
// fetched, the rate and the time left (-q hides it). With -watch it keeps
// running: it fetches, then waits for new mail (IMAP IDLE) or polls every
// -interval (POP3), until SIGINT or SIGTERM.
//
// Each fetch ends by printing one summary line on stdout,
//
//	delivered=N skipped=N deleted=N bytes=N
//
// where skipped counts the messages not delivered on purpose (delivered by
// an earlier run, recognised by fingerprint, or over -max-size). Exit
// status: 0 success (and a -watch ended by a signal); 1 the run failed
// (connection, server, state, or the deletions not confirmed); 2 bad
// usage; 3 authentication failed; 4 TLS failed; 5 some messages could not
// be delivered into the Maildir or mbox (they stay on the server).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/internal/deliver"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// Exit statuses.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitAuth      = 3
	exitTLS       = 4
	exitUndeliver = 5
)

func main() {
	// One session, one message at a time: retrieve has no work for a
	// second thread. The IMAP client's reader goroutine and the handler
	// take turns on every message, and with more than one P each turn
	// wakes an idle thread that spins and sleeps again, costing more CPU
	// than the fetch itself. $GOMAXPROCS still decides when set.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	retention    mailaccess.Retention
	maildir      string
	mbox         string
	state        string
	ca           string
	insecure     bool
	maxSize      int64
	batch        int
	passwordFile string
	tokenFile    string
	tokenCommand string
	timeout      time.Duration
	watch        bool
	interval     time.Duration
	quiet        bool
	verbose      bool
	trace        string
	url          string
	excludes     []string // -exclude patterns, with a folder pattern in the URL
}

const usageHead = `usage: retrieve [flags] URL

Fetches the mail of one mailbox into a Maildir (-maildir DIR) or an mbox
file (-mbox FILE), and applies a retention policy on the server. A message
is deleted or moved on the server only once it is safely on disk and
recorded in the state file; messages are made durable in groups (-batch).

URL:
  pop3s://user@host[:port]           POP3 over TLS (port 995)
  pop3://user@host[:port]            POP3 with STLS required (port 110)
  imaps://user@host[:port][/folder]  IMAP over TLS (port 993), folder INBOX by default
  imap://user@host[:port][/folder]   IMAP with STARTTLS required (port 143)
  imaps://user@host[:port]/PATTERN   every folder that the IMAP LIST pattern
                                     matches (* across levels, % within one),
                                     less -exclude PATTERN (repeatable), \Junk
                                     and \Trash; -maildir DIR is then a
                                     Maildir++ tree (INBOX at the top, .Sent,
                                     .Archive.2024), -mbox DIR a directory of
                                     mbox files, and the line below ends with
                                     folders=N
  user;AUTH=MECH@host picks the mechanism: PLAIN, LOGIN, APOP (POP3),
  XOAUTH2 or OAUTHBEARER. Special characters in the user are percent-encoded.

Credentials (never given as a flag value):
  the password comes from $UNIMAIL_PASSWORD, or from -password-file FILE;
  an OAuth2 access token comes from -oauth2-token-file FILE or from the
  output of -oauth2-token-command CMD, read at each login, and is sent
  with XOAUTH2 unless the URL says ;AUTH=OAUTHBEARER ($UNIMAIL_PASSWORD
  must then be unset).

Output: one line per fetch on stdout,
  delivered=N skipped=N deleted=N bytes=N
and, on a terminal, a progress bar on stderr (not with -q).

flags:
`

const usageTail = `
exit status:
  0  success (with -watch: ended by SIGINT or SIGTERM)
  1  the run failed (connection, server, state file, deletions not confirmed)
  2  bad usage
  3  authentication failed
  4  TLS failed
  5  some messages could not be delivered (they stay on the server)
`

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("retrieve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	retention := fs.String("retention", "keep", "the retention `POLICY`, what happens on the server to delivered mail: keep, delete, keep-for=DURATION (14d, 336h) or move=FOLDER (IMAP)")
	fs.StringVar(&c.maildir, "maildir", "", "deliver into the Maildir `DIR` (created if missing); this or -mbox is required")
	fs.StringVar(&c.mbox, "mbox", "", "append to the mboxrd `FILE` (created if missing), locked with flock and FILE.lock while each group of messages is written")
	fs.StringVar(&c.state, "state", "", "delivery state `FILE` (default: .unimail-state inside the Maildir, or the mbox FILE + \".unimail-state\")")
	fs.StringVar(&c.ca, "ca", "", "PEM `FILE` of the certificates to trust instead of the system's")
	fs.BoolVar(&c.insecure, "insecure-cleartext", false, "allow pop3:// and imap:// without any TLS (credentials in clear)")
	fs.Int64Var(&c.maxSize, "max-size", 0, "leave messages larger than this many `bytes` on the server (0: no limit)")
	fs.IntVar(&c.batch, "batch", 0, "make at most `N` messages durable together, with one sync of the Maildir or mbox and one of the state (0: the library's default, 256; 1: each message on its own)")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the password from `FILE` (default: $UNIMAIL_PASSWORD)")
	fs.StringVar(&c.tokenFile, "oauth2-token-file", "", "log in with the OAuth2 access token in `FILE`, read at each login (surrounding white space ignored)")
	fs.StringVar(&c.tokenCommand, "oauth2-token-command", "", "log in with the OAuth2 access token that `CMD` (run with sh -c at each login) prints on stdout")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on each network operation")
	fs.BoolVar(&c.watch, "watch", false, "keep running: wait for new mail (IMAP IDLE) or poll every -interval (POP3), until SIGINT or SIGTERM")
	fs.DurationVar(&c.interval, "interval", time.Minute, "with -watch, the time between two fetches when the server cannot announce new mail")
	fs.BoolVar(&c.quiet, "q", false, "no progress bar")
	fs.BoolVar(&c.verbose, "v", false, "log what happens (debug level) on stderr")
	fs.Func("exclude", "with a folder `PATTERN` in the URL, leave out the folders this IMAP LIST pattern matches (may be repeated)", func(p string) error {
		c.excludes = append(c.excludes, p)
		return nil
	})
	fs.StringVar(&c.trace, "trace", "", "write the protocol trace, credentials redacted, to `FILE`")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageTail)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, errors.New("want exactly one URL")
	}
	c.url = fs.Arg(0)
	r, err := mailaccess.ParseRetention(*retention)
	if err != nil {
		return nil, err
	}
	c.retention = r
	switch {
	case c.maildir == "" && c.mbox == "":
		return nil, errors.New("-maildir or -mbox is required")
	case c.maildir != "" && c.mbox != "":
		return nil, errors.New("-maildir and -mbox exclude each other")
	}
	account := isPattern(c.url)
	if len(c.excludes) > 0 && !account {
		return nil, errors.New("-exclude needs a folder pattern in the URL, such as imaps://user@host/*")
	}
	if account && c.watch {
		return nil, errors.New("-watch takes one folder, not a folder pattern")
	}
	if c.state == "" {
		if account && c.mbox != "" {
			c.state = filepath.Join(c.mbox, ".unimail-state")
		} else if c.maildir != "" {
			c.state = filepath.Join(c.maildir, ".unimail-state")
		} else {
			c.state = c.mbox + ".unimail-state"
		}
	}
	if c.maxSize < 0 {
		return nil, errors.New("-max-size must not be negative")
	}
	if c.batch < 0 {
		return nil, errors.New("-batch must not be negative")
	}
	if c.interval <= 0 {
		return nil, errors.New("-interval must be positive")
	}
	if c.tokenFile != "" && c.tokenCommand != "" {
		return nil, errors.New("-oauth2-token-file and -oauth2-token-command exclude each other")
	}
	if (c.tokenFile != "" || c.tokenCommand != "") && c.passwordFile != "" {
		return nil, errors.New("-password-file and an OAuth2 token exclude each other")
	}
	return c, nil
}

// mboxLockTimeout is how long a delivery waits for another program's
// lock on the mbox before the message is left on the server.
var mboxLockTimeout = 10 * time.Second

// sink is where delivered messages go, in groups: add writes one message
// without making it durable, flush makes every message added since the
// last flush durable (the Fetcher's Flush, before it records them in the
// state), and close drops what was added and not flushed (the Fetcher did
// not record it: the next run delivers it again) and lets the destination
// go.
type sink struct {
	add   func(r io.Reader) error
	flush func() error
	close func() error
}

// openDestination opens the mbox or the Maildir for deliveries in groups.
func openDestination(c *config) (*sink, error) {
	if c.mbox != "" {
		mb, err := deliver.OpenMbox(c.mbox)
		if err != nil {
			return nil, err
		}
		mb.LockTimeout = mboxLockTimeout
		b := mb.Batch()
		return &sink{
			add: func(r io.Reader) error {
				_, err := b.Add(r, time.Now())
				return err
			},
			flush: b.Flush,
			close: func() error {
				b.Discard()
				return nil
			},
		}, nil
	}
	md, err := deliver.OpenMaildir(c.maildir)
	if err != nil {
		return nil, err
	}
	b := md.Batch()
	return &sink{
		add: func(r io.Reader) error {
			_, err := b.Add(r)
			return err
		},
		flush: func() error {
			_, err := b.Flush()
			return err
		},
		close: func() error {
			b.Discard()
			return md.Close()
		},
	}, nil
}

// credentials fills opts.Auth from the environment, the password file or
// the token source, and checks that exactly one kind is given.
func credentials(c *config, target *unimail.Target, getenv func(string) string, opts *unimail.Options) error {
	if c.tokenFile != "" || c.tokenCommand != "" {
		if target.Password != "" {
			return errors.New("a password in the URL and an OAuth2 token exclude each other")
		}
		if getenv("UNIMAIL_PASSWORD") != "" {
			return errors.New("UNIMAIL_PASSWORD is set: unset it to log in with an OAuth2 token")
		}
		switch target.Mechanism {
		case "", mailaccess.MechXOAuth2:
			opts.Auth.Mechanism = mailaccess.MechXOAuth2
		case mailaccess.MechOAuthBearer:
			opts.Auth.Mechanism = mailaccess.MechOAuthBearer
		default:
			return fmt.Errorf("an OAuth2 token needs ;AUTH=XOAUTH2 or ;AUTH=OAUTHBEARER, not ;AUTH=%s", target.Mechanism)
		}
		if c.tokenFile != "" {
			opts.Auth.Token = tokenFromFile(c.tokenFile)
		} else {
			opts.Auth.Token = tokenFromCommand(c.tokenCommand)
		}
		return nil
	}
	password := getenv("UNIMAIL_PASSWORD")
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if password == "" && target.Password == "" {
		return errors.New("no password: set UNIMAIL_PASSWORD or use -password-file (or an -oauth2-token- flag)")
	}
	opts.Auth.Password = password
	return nil
}

// tokenError is an error getting a token: it never holds the token or
// the command's output.
func tokenError(format string, a ...any) *mailaccess.Error {
	return mailerr.New("oauth2 token", mailaccess.ErrAuth, "", fmt.Errorf(format, a...))
}

func tokenFromFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return "", tokenError("token file %s: %v", path, pe.Err)
			}
			return "", tokenError("token file %s: cannot read it", path)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", tokenError("token file %s is empty", path)
		}
		return tok, nil
	}
}

// maxTokenOutput bounds what a token command may print.
const maxTokenOutput = 64 << 10

func tokenFromCommand(command string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		// Neither stdout (the token) nor stderr (which may repeat it) is
		// ever shown.
		var out limitedBuffer
		out.limit = maxTokenOutput
		cmd.Stdout = &out
		cmd.Stderr = io.Discard
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			// It may work next time (a token endpoint that was down).
			// An authentication failure, but a temporary one.
			e := tokenError("token command failed (%v); its output is not shown: run it yourself to see why", ee.ProcessState)
			e.Err = fmt.Errorf("%w: %w", mailaccess.ErrUnavailable, e.Err)
			return "", e
		case err != nil:
			return "", tokenError("token command could not run: %v", err)
		case out.over:
			return "", tokenError("token command printed more than %d bytes", maxTokenOutput)
		}
		tok := strings.TrimSpace(out.String())
		if tok == "" {
			return "", tokenError("token command printed no token")
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			return "", tokenError("token command printed more than one word; it must print the access token alone")
		}
		return tok, nil
	}
}

type limitedBuffer struct {
	bytes.Buffer
	limit int
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitUsage
	}
	parse := unimail.ParseURL
	if isPattern(c.url) {
		parse = unimail.ParseAccountURL
	}
	target, err := parse(c.url)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitUsage
	}
	opts := &unimail.Options{
		DialOptions:       mailaccess.DialOptions{Timeout: c.timeout},
		InsecureCleartext: c.insecure,
	}
	if err := credentials(c, target, getenv, opts); err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitUsage
	}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			fmt.Fprintf(stderr, "retrieve: -ca: %v\n", err)
			return exitUsage
		}
		ca := x509.NewCertPool()
		if !ca.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "retrieve: -ca %s: no PEM certificate found\n", c.ca)
			return exitUsage
		}
		// The system's certificates are not read: -ca replaces them, as
		// curl's --cacert does (reading them would also cost 15-20 ms
		// of every run).
		opts.TLSConfig = &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}
	}

	// The bar, when there is one, is also where the log goes, so that log
	// lines appear above it rather than through it.
	var bar *progressBar
	logOut := stderr
	if cols, ok := terminalWidth(stderr); ok && !c.quiet {
		bar = newProgressBar(stderr, func() int {
			if n, ok := terminalWidth(stderr); ok {
				return n
			}
			return cols
		})
		logOut = bar
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if c.trace != "" {
		tf, err := os.OpenFile(c.trace, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "retrieve: -trace: %v\n", err)
			return exitUsage
		}
		defer tf.Close()
		opts.Trace = tf
	}
	if c.verbose {
		// The drivers log their errors, which the last line repeats:
		// only with -v.
		opts.Logger = logger
	}

	if isPattern(c.url) {
		f := &mailaccess.Fetcher{Retention: c.retention, MaxSize: c.maxSize, Logger: logger, Batch: mailaccess.Batch{Messages: c.batch}}
		if bar != nil {
			f.Progress = bar.update
		}
		return runAccount(ctx, c, target, opts, f, bar, stdout, stderr)
	}
	dest, err := openDestination(c)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	defer dest.close()
	st, err := mailaccess.OpenFileState(c.state)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	defer st.Close()

	// The handler writes each message without a sync; the Fetcher makes
	// each group durable with dest.flush, then records it in the state,
	// and only then applies the retention to it.
	f := &mailaccess.Fetcher{
		Retention: c.retention,
		State:     st,
		MaxSize:   c.maxSize,
		Logger:    logger,
		Flush:     func(context.Context) error { return dest.flush() },
		Batch:     mailaccess.Batch{Messages: c.batch},
	}
	if bar != nil {
		f.Progress = bar.update
	}
	h := func(ctx context.Context, m *mailaccess.Message) error {
		var body io.Reader = m.Body
		if bar != nil {
			body = &countingReader{r: m.Body, bar: bar}
		}
		return dest.add(body)
	}
	// report ends one fetch's output: the bar's last state, the messages
	// left on the server, and the summary line.
	report := func(rep mailaccess.Report) {
		if bar != nil {
			bar.finish()
		}
		for _, p := range rep.Problems {
			if errors.Is(p, mailaccess.ErrTooLarge) {
				fmt.Fprintf(stderr, "retrieve: left on the server: %v\n", p)
			}
		}
		fmt.Fprintf(stdout, "delivered=%d skipped=%d deleted=%d bytes=%d\n", rep.Delivered, rep.Skipped+rep.Recognized+rep.TooLarge, rep.Deleted, rep.Bytes)
	}
	dial := func(ctx context.Context) (mailaccess.Mailbox, error) {
		return unimail.DialTarget(ctx, target, opts)
	}

	if c.watch {
		err := f.Run(ctx, dial, h, &mailaccess.RunOptions{Interval: c.interval, AfterFetch: func(rep mailaccess.Report, err error) {
			report(rep)
			if errors.Is(err, mailaccess.ErrHandler) {
				// Run retries these without a word: say it here.
				fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
			}
		}})
		if bar != nil {
			bar.finish()
		}
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
		return exitCode(err)
	}

	mb, err := dial(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
		return exitCode(err)
	}
	rep, err := f.Fetch(ctx, mb, h)
	report(rep)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", oneLine(err))
		return exitCode(err)
	}
	return exitOK
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, mailaccess.ErrAuth):
		return exitAuth
	case errors.Is(err, mailaccess.ErrTLS):
		return exitTLS
	case errors.Is(err, mailaccess.ErrHandler):
		return exitUndeliver
	case errors.Is(err, mailaccess.ErrInvalidArgument):
		return exitUsage
	}
	return exitFailed
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
