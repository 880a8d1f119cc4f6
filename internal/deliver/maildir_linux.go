package deliver

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// sysDirs holds a Maildir's tmp/ and new/ open, so that a delivery names
// its file relative to them: no path walk, no os.File around the message
// file, and one fsync of new/ without opening it.
type sysDirs struct {
	tmp, new *os.File // kept for Close and for their finalizers
	tmpFD    int
	newFD    int
}

func openDirs(dir string) (sysDirs, error) {
	var d sysDirs
	var err error
	if d.tmp, err = os.OpenFile(filepath.Join(dir, "tmp"), os.O_RDONLY|syscall.O_DIRECTORY, 0); err != nil {
		return sysDirs{}, err
	}
	if d.new, err = os.OpenFile(filepath.Join(dir, "new"), os.O_RDONLY|syscall.O_DIRECTORY, 0); err != nil {
		d.tmp.Close()
		return sysDirs{}, err
	}
	d.tmpFD, d.newFD = int(d.tmp.Fd()), int(d.new.Fd())
	return d, nil
}

// close closes the directories, once no delivery uses them.
func (d *sysDirs) close() error {
	return errors.Join(d.tmp.Close(), d.new.Close())
}

// tmpFile is a message file in tmp/: its descriptor (-1 once it is
// closed) and its path for errors.
type tmpFile struct {
	fd   int
	path string
}

var closedFile = tmpFile{fd: -1}

func (d *sysDirs) create(name string) (tmpFile, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = syscall.Openat(d.tmpFD, name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
		return err
	})
	runtime.KeepAlive(d.tmp)
	path := filepath.Join(d.tmp.Name(), name)
	if err != nil {
		return closedFile, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return tmpFile{fd, path}, nil
}

// remove removes the file name from tmp/, on the way out of a failed
// delivery.
func (d *sysDirs) remove(name string) {
	retryEINTR(func() error { return syscall.Unlinkat(d.tmpFD, name) })
	runtime.KeepAlive(d.tmp)
}

// publish renames tmp/name to new/name and fsyncs new/. When the fsync
// fails, it removes new/name again: the delivery failed, and the message
// will come again.
func (d *sysDirs) publish(name string) error {
	err := retryEINTR(func() error { return syscall.Renameat(d.tmpFD, name, d.newFD, name) })
	if err != nil {
		err = &os.LinkError{Op: "rename", Old: filepath.Join(d.tmp.Name(), name), New: filepath.Join(d.new.Name(), name), Err: err}
	} else if err = retryEINTR(func() error { return syscall.Fsync(d.newFD) }); err != nil {
		err = &os.PathError{Op: "sync", Path: d.new.Name(), Err: err}
		retryEINTR(func() error { return syscall.Unlinkat(d.newFD, name) })
	}
	runtime.KeepAlive(d.tmp)
	runtime.KeepAlive(d.new)
	return err
}

func (f tmpFile) write(b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return &os.PathError{Op: "write", Path: f.path, Err: err}
		case n == 0:
			return &os.PathError{Op: "write", Path: f.path, Err: syscall.EIO}
		}
		b = b[n:]
	}
	return nil
}

func (f tmpFile) sync() error {
	if err := retryEINTR(func() error { return syscall.Fsync(f.fd) }); err != nil {
		return &os.PathError{Op: "sync", Path: f.path, Err: err}
	}
	return nil
}

// close closes the file; a closed file's close does nothing. The
// descriptor is gone even when close fails, so it is never retried.
func (f tmpFile) close() error {
	if f.fd < 0 {
		return nil
	}
	if err := syscall.Close(f.fd); err != nil && err != syscall.EINTR {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}
