//go:build !linux

package deliver

import (
	"os"
	"path/filepath"
)

// sysDirs names a Maildir's tmp/ and new/; each delivery opens them by
// name.
type sysDirs struct {
	tmp, new string
}

func openDirs(dir string) (sysDirs, error) {
	return sysDirs{tmp: filepath.Join(dir, "tmp"), new: filepath.Join(dir, "new")}, nil
}

func (d *sysDirs) close() error { return nil }

// tmpFile is a message file in tmp/, or nil once it is closed.
type tmpFile struct{ f *os.File }

var closedFile tmpFile

func (d *sysDirs) create(name string) (tmpFile, error) {
	f, err := os.OpenFile(filepath.Join(d.tmp, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return closedFile, err
	}
	return tmpFile{f}, nil
}

// remove removes the file name from tmp/, on the way out of a failed
// delivery.
func (d *sysDirs) remove(name string) { os.Remove(filepath.Join(d.tmp, name)) }

// publish renames tmp/name to new/name and fsyncs new/. When the fsync
// fails, it removes new/name again: the delivery failed, and the message
// will come again.
func (d *sysDirs) publish(name string) error {
	path := filepath.Join(d.new, name)
	if err := os.Rename(filepath.Join(d.tmp, name), path); err != nil {
		return err
	}
	if err := syncDir(d.new); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func (f tmpFile) write(b []byte) error {
	_, err := f.f.Write(b)
	return err
}

func (f tmpFile) sync() error { return f.f.Sync() }

func (f tmpFile) close() error {
	if f.f == nil {
		return nil
	}
	return f.f.Close()
}
