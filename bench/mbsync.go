package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The mbsync case: mbsync (isync) 1.4, the fastest of the peers measured
// in the design notes, pulling the whole INBOX into a fresh Maildir on
// tmpfs against the same Dovecot as the other cases.
//
// Host name verification: mbsync 1.4 matches the configured Host against
// the DNS names of the certificate (subjectAltName, then the common name)
// and never against its IP addresses; it skips that check only for a
// certificate of CertificateFile that is not a CA, and the test
// certificate is its own CA. The test certificate names 127.0.0.1 and
// localhost, so the configuration says Host localhost, which
// must resolve to 127.0.0.1 (checked before each run): the chain and the
// host name are both verified, and the connection goes to the same
// 127.0.0.1 as the other clients'.

// mbsyncHost is the host name mbsync connects to and verifies.
const mbsyncHost = "localhost"

// mbsyncChannel is the name of the Channel of the configuration.
const mbsyncChannel = "unimail-bench"

// tuidHeader starts the header line that mbsync adds to every message it
// stores ("X-TUID: " and 12 characters), to find the message again if it
// is interrupted before it has recorded the message's UID.
const tuidHeader = "X-TUID: "

// MbsyncPath returns the mbsync executable found in $PATH, or "" when it
// is not installed (Debian: apt-get install isync).
func MbsyncPath() string {
	p, err := exec.LookPath("mbsync")
	if err != nil {
		return ""
	}
	return p
}

// MbsyncVersion returns what mbsync --version prints ("isync 1.4.4"), or
// "" when it cannot be run.
func MbsyncVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// mbsyncQuote returns s as one quoted argument of an mbsync configuration
// file, with backslashes and double quotes escaped. It rejects control
// characters (CR, LF and NUL among them), which would end the line or the
// argument.
func mbsyncQuote(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("mbsync configuration: control character %q in a value", r)
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// writeMbsyncrc writes into dir (a fresh directory) the configuration
// file of one mbsync run that pulls the INBOX at t into the Maildir
// dir/mail/INBOX with its state in dir/state, and returns its path. The
// file holds the password and has mode 0600; the password is never on a
// command line.
func writeMbsyncrc(dir string, t Target, password string) (string, error) {
	return writeMbsyncrcFor(dir, t, password, false)
}

// writeMbsyncrcFor is writeMbsyncrc; with account, the Channel takes every
// folder (Patterns *) instead of INBOX alone.
func writeMbsyncrcFor(dir string, t Target, password string, account bool) (string, error) {
	if t.Proto != IMAP {
		return "", fmt.Errorf("mbsync fetches over IMAP only, not %s", t.Proto)
	}
	_, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return "", fmt.Errorf("mbsync: address %q: %v", t.Addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("mbsync: port %q: %v", port, err)
	}
	mail, state := filepath.Join(dir, "mail"), filepath.Join(dir, "state")
	for _, d := range []string{mail, state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", err
		}
	}
	var q [6]string
	for i, s := range []string{t.User, password, t.CAFile, mail + "/", filepath.Join(mail, "INBOX"), state + "/"} {
		if q[i], err = mbsyncQuote(s); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("IMAPAccount far")
	p("Host %s", mbsyncHost)
	p("Port %s", port)
	p("User %s", q[0])
	p("Pass %s", q[1])
	p("SSLType IMAPS")
	p("SystemCertificates no")
	p("CertificateFile %s", q[2])
	if t.Timeout > 0 {
		p("Timeout %d", int(math.Ceil(t.Timeout.Seconds())))
	}
	p("")
	p("IMAPStore far")
	p("Account far")
	p("")
	p("MaildirStore near")
	p("Path %s", q[3])
	p("Inbox %s", q[4])
	p("")
	p("Channel %s", mbsyncChannel)
	if account {
		p("Far :far:")
		p("Near :near:")
		p("Patterns *")
	} else {
		p("Far :far:INBOX")
		p("Near :near:INBOX")
	}
	p("Sync Pull New")
	p("Create Near")
	p("Remove None")
	p("Expunge None")
	p("SyncState %s", q[5])
	rc := filepath.Join(dir, "mbsyncrc")
	f, err := os.OpenFile(rc, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return rc, err
}

// checkLocalhost fails unless the host name mbsync connects to resolves
// to 127.0.0.1, where Dovecot listens.
func checkLocalhost(ctx context.Context) error {
	addrs, err := net.DefaultResolver.LookupHost(ctx, mbsyncHost)
	if err != nil {
		return fmt.Errorf("mbsync: resolving %s: %v", mbsyncHost, err)
	}
	if !slices.Contains(addrs, "127.0.0.1") {
		return fmt.Errorf("mbsync: %s resolves to %v, not 127.0.0.1, where Dovecot listens", mbsyncHost, addrs)
	}
	return nil
}

// mbsync runs `mbsync -c <rc> -q <channel>` once through the launcher,
// into a fresh directory under m.work that it removes afterwards, and
// returns what the Maildir holds (see mbsyncMaildir). A non-zero exit
// status is an error with mbsync's standard error.
func (m *measure) mbsync(ctx context.Context, t Target) (Outcome, Sample, error) {
	return m.mbsyncFor(ctx, t, false)
}

// mbsyncFor is mbsync; with account, every folder (Patterns *) into a
// tree of Maildirs, counted by mbsyncTree.
func (m *measure) mbsyncFor(ctx context.Context, t Target, account bool) (Outcome, Sample, error) {
	if err := checkLocalhost(ctx); err != nil {
		return Outcome{}, Sample{}, err
	}
	dir, err := os.MkdirTemp(m.work, "mbsync-")
	if err != nil {
		return Outcome{}, Sample{}, err
	}
	defer os.RemoveAll(dir)
	rc, err := writeMbsyncrcFor(dir, t, benchPassword, account)
	if err != nil {
		return Outcome{}, Sample{}, err
	}
	cmd := exec.Command(m.r.Mbsync, "-c", rc, "-q", mbsyncChannel)
	// No HOME of the user's: mbsync reads nothing but -c.
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s, err := m.r.runMeasured(ctx, cmd)
	if err != nil {
		return Outcome{}, s, fmt.Errorf("mbsync: %v: %s", err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	if account {
		out, err := mbsyncTree(filepath.Join(dir, "mail"))
		return out, s, err
	}
	out, err := mbsyncMaildir(filepath.Join(dir, "mail", "INBOX"))
	return out, s, err
}

// mbsyncMaildir counts the messages of the Maildir dir that mbsync filled
// (its new/ and cur/; tmp/ must be empty) and their octets as they were
// on the server. mbsync stores messages with LF line ends (it turns each
// CRLF into LF) and adds one header line "X-TUID: <12 characters>" to
// each; so a message's server octets are its file's size, less that line,
// plus one CR for every LF not preceded by a CR. That is exact for
// messages whose lines all end with CRLF, as the benchmark's do (a bare LF
// on the server would be counted one octet too many, and the run would
// fail its check). A file with more than one X-TUID line in its header, or
// none, is an error.
func mbsyncMaildir(dir string) (Outcome, error) {
	var out Outcome
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil {
		return out, err
	} else if len(ents) > 0 {
		return out, fmt.Errorf("mbsync left %d files in %s/tmp", len(ents), dir)
	}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return out, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				return out, fmt.Errorf("mbsync Maildir: %s/%s is not a file", sub, e.Name())
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				return out, err
			}
			n, err := serverOctets(b)
			if err != nil {
				return out, fmt.Errorf("mbsync Maildir: %s/%s: %v", sub, e.Name(), err)
			}
			out.Messages++
			out.Bytes += n
		}
	}
	return out, nil
}

// serverOctets returns the size that message b, as mbsync stored it, had
// on the server: without its X-TUID header line and with CRLF line ends.
func serverOctets(b []byte) (int64, error) {
	end := bytes.Index(b, []byte("\n\n"))
	if end < 0 {
		end = len(b)
	}
	// The header lines, each with its LF; the X-TUID line is one of them.
	var tuid []byte
	for rest := b[:min(end+1, len(b))]; len(rest) > 0; {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		if bytes.HasPrefix(line, []byte(tuidHeader)) {
			if tuid != nil {
				return 0, errors.New("two X-TUID header lines")
			}
			tuid = line
		}
		rest = after
	}
	if tuid == nil {
		return 0, errors.New("no X-TUID header line")
	}
	n := int64(len(b) - len(tuid) - 1)
	lf := bytes.Count(b, []byte("\n")) - 1
	crlf := bytes.Count(b, []byte("\r\n"))
	if bytes.HasSuffix(tuid, []byte("\r")) {
		crlf--
	}
	return n + int64(lf-crlf), nil
}

// mbsyncNote is the report's line about mbsync: its version, or why it
// is missing.
func mbsyncNote(meta Meta) string {
	switch {
	case meta.Mbsync != "":
		return fmt.Sprintf("- mbsync: %s, the fastest of the peers in the design notes, measured as a case of its own", meta.Mbsync)
	case meta.MbsyncMissing:
		return "- mbsync: not installed, so not measured; `apt-get install isync` (Debian) adds its rows to the tables"
	}
	return "- mbsync: left out of this run"
}
