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

// syncEachFile says whether MaildirBatch.Add fsyncs each file it
// writes: here it does, since there is no syncfs to make a group durable
// at once.
const syncEachFile = true

// rename renames tmp/name to new/name.
func (d *sysDirs) rename(name string) error {
	return os.Rename(filepath.Join(d.tmp, name), filepath.Join(d.new, name))
}

// unpublish removes new/name, on the way out of a failed publication.
func (d *sysDirs) unpublish(name string) { os.Remove(filepath.Join(d.new, name)) }

// syncNew fsyncs new/.
func (d *sysDirs) syncNew() error { return syncDir(d.new) }

// syncGroup has nothing to do: each file was fsynced as it was written.
func (d *sysDirs) syncGroup() error { return nil }

func (f tmpFile) write(b []byte) error {
	_, err := f.f.Write(b)
	return err
}

func (f tmpFile) sync() error { return fileSync(f.f) }

func (f tmpFile) close() error {
	if f.f == nil {
		return nil
	}
	return f.f.Close()
}
