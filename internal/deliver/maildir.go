// Package deliver writes delivered messages durably into a local
// destination, for examples/retrieve and the tests that check what it
// delivers.
package deliver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-maildir"
)

// Maildir delivers into a Maildir (tmp/, new/, cur/), durably: each
// message is written to tmp/, fsynced, renamed into new/, and new/ is
// fsynced, before Deliver returns. go-maildir creates the directories; its
// own Delivery type does not fsync, which is why the write is done here.
type Maildir struct {
	dir  string
	host string
}

var counter atomic.Uint64

// OpenMaildir creates the Maildir at dir if it is missing.
func OpenMaildir(dir string) (*Maildir, error) {
	if err := maildir.Dir(dir).Init(); err != nil {
		return nil, fmt.Errorf("maildir %s: %w", dir, err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Maildir{dir: dir, host: host}, nil
}

// Dir returns the Maildir's directory.
func (m *Maildir) Dir() string { return m.dir }

// uniqueName follows the Maildir naming convention:
// seconds.MmicrosPpidQcounterRrandom.host
func (m *Maildir) uniqueName() string {
	now := time.Now()
	var rnd [6]byte
	rand.Read(rnd[:])
	return strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) + "Q" + strconv.FormatUint(counter.Add(1), 10) +
		"R" + hex.EncodeToString(rnd[:]) + "." + m.host
}

// Deliver copies r into a new message file and makes it durable. It
// returns the final path and the number of bytes written. On an error
// (including an error reading r) nothing is left in new/ and the
// temporary file is removed.
func (m *Maildir) Deliver(r io.Reader) (path string, n int64, err error) {
	name := m.uniqueName()
	tmp := filepath.Join(m.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err = io.Copy(f, r)
	if err != nil {
		return "", n, err
	}
	if err = f.Sync(); err != nil {
		return "", n, err
	}
	if err = f.Close(); err != nil {
		return "", n, err
	}
	path = filepath.Join(m.dir, "new", name)
	if err = os.Rename(tmp, path); err != nil {
		return "", n, err
	}
	if err = syncDir(filepath.Join(m.dir, "new")); err != nil {
		return "", n, err
	}
	return path, n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
