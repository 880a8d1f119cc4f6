package deliver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The system calls that make files durable, variables so that the tests
// can count them and make them fail.
var (
	sysFsync  = syscall.Fsync
	sysSyncfs = unix.Syncfs
)

// groupSyncfs says whether MaildirBatch.Flush makes its group's files
// durable with one syncfs of the Maildir's file system (the fastest way,
// see BenchmarkGroupSync) rather than one fsync per file as each is
// written. syncfs reports writeback errors only since Linux 5.8 (before,
// it returned 0 even when the data never reached the disk), so older
// kernels fsync each file.
var groupSyncfs = syncfsReportsErrors()

// syncEachFile says whether MaildirBatch.Add fsyncs each file it writes.
var syncEachFile = !groupSyncfs

func syncfsReportsErrors() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}

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

// rename renames tmp/name to new/name.
func (d *sysDirs) rename(name string) error {
	err := retryEINTR(func() error { return syscall.Renameat(d.tmpFD, name, d.newFD, name) })
	runtime.KeepAlive(d.tmp)
	runtime.KeepAlive(d.new)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(d.tmp.Name(), name), New: filepath.Join(d.new.Name(), name), Err: err}
	}
	return nil
}

// unpublish removes new/name, on the way out of a failed publication.
func (d *sysDirs) unpublish(name string) {
	retryEINTR(func() error { return syscall.Unlinkat(d.newFD, name) })
	runtime.KeepAlive(d.new)
}

// syncNew fsyncs new/.
func (d *sysDirs) syncNew() error {
	err := retryEINTR(func() error { return sysFsync(d.newFD) })
	runtime.KeepAlive(d.new)
	if err != nil {
		return &os.PathError{Op: "sync", Path: d.new.Name(), Err: err}
	}
	return nil
}

// syncGroup makes every file written into tmp/ durable, with one syncfs
// of the file system (when groupSyncfs; else each file was fsynced as it
// was written, and there is nothing left to do). syncfs reports a
// writeback error of the file system that happened since tmp/ was opened
// (and not yet reported through it), whichever file it hit: the group
// then fails as a whole.
func (d *sysDirs) syncGroup() error {
	if !groupSyncfs {
		return nil
	}
	err := retryEINTR(func() error { return sysSyncfs(d.tmpFD) })
	runtime.KeepAlive(d.tmp)
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: d.tmp.Name(), Err: err}
	}
	return nil
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
	if err := retryEINTR(func() error { return sysFsync(f.fd) }); err != nil {
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
