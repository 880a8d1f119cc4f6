// Command retrieve fetches mail from a POP3 or IMAP server into a local
// Maildir, with an explicit retention policy, and never loses a message:
// each message is written to the Maildir's tmp/, fsynced and renamed into
// new/ before the server is allowed to delete it.
//
// Usage:
//
//	go run ./examples/retrieve [flags] URL
//
// URL is pop3s://user@host[:port], pop3://user@host[:port] (STLS
// required), imaps://user@host[:port][/folder] or imap://... (STARTTLS
// required). The password comes from the environment variable
// UNIMAIL_PASSWORD or from -password-file, never from a flag value.
//
// It ends by printing one summary line,
//
//	delivered=N skipped=N deleted=N bytes=N
//
// where skipped counts the messages not delivered on purpose (delivered by
// an earlier run, recognised by fingerprint, or over -max-size). Exit
// status: 0 success; 1 the run failed (connection, server, state, or the
// deletions not confirmed); 2 bad usage; 3 authentication failed; 4 TLS
// failed; 5 some messages could not be delivered into the Maildir (they
// stay on the server).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/unimail/unimail"
	"github.com/unimail/unimail/internal/deliver"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	retention    mailaccess.Retention
	maildir      string
	state        string
	ca           string
	insecure     bool
	maxSize      int64
	passwordFile string
	timeout      time.Duration
	url          string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("retrieve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	retention := fs.String("retention", "keep", "what happens on the server to delivered mail: keep, delete, keep-for=DURATION (14d, 336h) or move=FOLDER")
	fs.StringVar(&c.maildir, "maildir", "", "deliver into this Maildir (created if missing); required")
	fs.StringVar(&c.state, "state", "", "delivery state file (default: .unimail-state inside the Maildir)")
	fs.StringVar(&c.ca, "ca", "", "PEM file of certificates to trust besides the system's")
	fs.BoolVar(&c.insecure, "insecure-cleartext", false, "allow pop3:// and imap:// without any TLS (credentials in clear)")
	fs.Int64Var(&c.maxSize, "max-size", 0, "leave messages larger than this many bytes on the server (0: no limit)")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the password from this file (default: $UNIMAIL_PASSWORD)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on each network operation")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: retrieve [flags] URL\n\nURL: pop3s://user@host[:port], pop3://... (STLS), imaps://user@host[:port][/folder], imap://... (STARTTLS)\nThe password comes from $UNIMAIL_PASSWORD or -password-file.\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nexit status: 0 success, 1 run failed, 2 bad usage, 3 authentication failed, 4 TLS failed, 5 some messages not delivered\n")
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
	if c.maildir == "" {
		return nil, errors.New("-maildir is required")
	}
	if c.state == "" {
		c.state = filepath.Join(c.maildir, ".unimail-state")
	}
	if c.maxSize < 0 {
		return nil, errors.New("-max-size must not be negative")
	}
	return c, nil
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
	target, err := unimail.ParseURL(c.url)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitUsage
	}
	password := getenv("UNIMAIL_PASSWORD")
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			fmt.Fprintf(stderr, "retrieve: password file: %v\n", err)
			return exitUsage
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if password == "" && target.Password == "" {
		fmt.Fprintln(stderr, "retrieve: no password: set UNIMAIL_PASSWORD or use -password-file")
		return exitUsage
	}
	opts := &unimail.Options{
		Auth:              mailaccess.Auth{Password: password},
		InsecureCleartext: c.insecure,
		Timeout:           c.timeout,
	}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			fmt.Fprintf(stderr, "retrieve: -ca: %v\n", err)
			return exitUsage
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "retrieve: -ca %s: no PEM certificate found\n", c.ca)
			return exitUsage
		}
		opts.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	md, err := deliver.OpenMaildir(c.maildir)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	st, err := mailaccess.OpenFileState(c.state)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitFailed
	}
	defer st.Close()

	mb, err := unimail.DialTarget(ctx, target, opts)
	if err != nil {
		fmt.Fprintf(stderr, "retrieve: %v\n", err)
		return exitCode(err)
	}
	f := &mailaccess.Fetcher{Retention: c.retention, State: st, MaxSize: c.maxSize}
	rep, err := f.Fetch(ctx, mb, func(ctx context.Context, m *mailaccess.Message) error {
		_, _, err := md.Deliver(m.Body)
		return err
	})
	for _, p := range rep.Problems {
		if errors.Is(p, mailaccess.ErrTooLarge) {
			fmt.Fprintf(stderr, "retrieve: left on the server: %v\n", p)
		}
	}
	fmt.Fprintf(stdout, "delivered=%d skipped=%d deleted=%d bytes=%d\n", rep.Delivered, rep.Skipped+rep.Recognized+rep.TooLarge, rep.Deleted, rep.Bytes)
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
