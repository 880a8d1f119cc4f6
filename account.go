package unimail

import (
	"context"
	"errors"
	"strings"

	"github.com/unimail/unimail/imap"
	"github.com/unimail/unimail/internal/mailerr"
	"github.com/unimail/unimail/mailaccess"
)

// DialAccount opens the whole IMAP account that rawURL names, for
// mailaccess.Fetcher.FetchAccount, and returns it with the Selection that
// the URL's path makes (see ParseAccountURL): "imaps://alice@host/*" or
// "imaps://alice@host" (no path) select every folder but \Junk and
// \Trash, "imaps://alice@host/Archive/%" the children of Archive,
// "imaps://alice@host/INBOX" INBOX alone. The caller may add Exclude
// patterns to the Selection, or set Junk and Trash.
//
// Options are read as Dial reads them, TokenSource included. On any error
// the Account and the Selection are nil.
func DialAccount(ctx context.Context, rawURL string, opts *Options) (mailaccess.Account, *mailaccess.Selection, error) {
	t, err := ParseAccountURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	a, err := DialAccountTarget(ctx, t, opts)
	if err != nil {
		return nil, nil, err
	}
	return a, &mailaccess.Selection{Include: []string{t.Folder}}, nil
}

// ParseAccountURL parses an imap or imaps URL whose path is an IMAP LIST
// pattern on the decoded folder names (see mailaccess.Selection), as
// ParseURL parses the others; the Target's Folder holds the pattern, "*"
// when the URL has no path. A "%" that does not begin a %XX escape is the
// wildcard itself; write "%25" for a "%" followed by two hexadecimal
// digits. A pop3 or pop3s URL is ErrUnsupported (a POP3 maildrop has no
// folders); an invalid pattern is ErrInvalidArgument.
func ParseAccountURL(rawURL string) (*Target, error) {
	t, err := ParseURL(escapeWildcards(rawURL))
	if err != nil {
		return nil, err
	}
	if t.Protocol() != "imap" {
		return nil, mailerr.New("parse URL", mailaccess.ErrUnsupported, "", errors.New("a whole account needs an imap or imaps URL: POP3 has no folders"))
	}
	if !hasPath(rawURL) {
		t.Folder = "*"
	}
	if err := (&mailaccess.Selection{Include: []string{t.Folder}}).Check(); err != nil {
		return nil, err
	}
	return t, nil
}

// DialAccountTarget is DialAccount for a Target of ParseAccountURL (its
// Folder is not used). On any error the Account is nil.
func DialAccountTarget(ctx context.Context, t *Target, opts *Options) (mailaccess.Account, error) {
	if t.Protocol() != "imap" {
		return nil, mailerr.New("dial", mailaccess.ErrUnsupported, "", errors.New("a whole account needs IMAP: POP3 has no folders"))
	}
	o, auth, sec := t.settings(opts)
	dial := func(ctx context.Context, auth mailaccess.Auth) (mailaccess.Account, error) {
		d := o.DialOptions
		d.Auth, d.Security = auth, sec
		a, err := imap.DialAccount(ctx, t.Addr, &imap.Options{DialOptions: d})
		if err != nil {
			return nil, err // a nil interface, not a nil *imap.Account
		}
		return a, nil
	}
	if o.TokenSource != nil {
		return dialOAuth(ctx, "imap", &o, auth, dial)
	}
	return dial(ctx, auth)
}

// escapeWildcards escapes as "%25" each "%" of the URL's path that does
// not begin a %XX escape, so that a LIST pattern such as "Archive/%"
// parses.
func escapeWildcards(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	j := strings.Index(raw[i+3:], "/")
	if j < 0 {
		return raw
	}
	start := i + 3 + j
	var b strings.Builder
	b.WriteString(raw[:start])
	path := raw[start:]
	for k := 0; k < len(path); k++ {
		if path[k] == '%' && (k+2 >= len(path) || !isHex(path[k+1]) || !isHex(path[k+2])) {
			b.WriteString("%25")
			continue
		}
		b.WriteByte(path[k])
	}
	return b.String()
}

// hasPath reports whether the URL has a path other than "/".
func hasPath(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	_, path, ok := strings.Cut(rest, "/")
	return ok && path != ""
}
