package deliver

import (
	"os"
	"sync"
	"testing"
)

// syncCount counts the syncs that reach the system (fsync of a file or
// directory, syncfs) while it is installed, and makes them fail when
// fail returns an error for them.
type syncCount struct {
	mu     sync.Mutex
	fsync  int // of message files and of directories, by descriptor
	syncfs int
	file   int // (*os.File).Sync: the mbox, directories by name
	fail   func(kind string) error
}

func (c *syncCount) hit(kind string, n *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n++
	if c.fail != nil {
		return c.fail(kind)
	}
	return nil
}

// counts returns the number of each kind of sync so far.
func (c *syncCount) counts() (fsync, syncfs, file int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fsync, c.syncfs, c.file
}

// countSyncs installs a syncCount in front of the real system calls
// until the test ends.
func countSyncs(t *testing.T) *syncCount {
	c := &syncCount{}
	oldFsync, oldSyncfs, oldFile := sysFsync, sysSyncfs, fileSync
	sysFsync = func(fd int) error {
		if err := c.hit("fsync", &c.fsync); err != nil {
			return err
		}
		return oldFsync(fd)
	}
	sysSyncfs = func(fd int) error {
		if err := c.hit("syncfs", &c.syncfs); err != nil {
			return err
		}
		return oldSyncfs(fd)
	}
	fileSync = func(f *os.File) error {
		if err := c.hit("file", &c.file); err != nil {
			return err
		}
		return oldFile(f)
	}
	t.Cleanup(func() { sysFsync, sysSyncfs, fileSync = oldFsync, oldSyncfs, oldFile })
	return c
}

// withGroupSyncfs sets how a MaildirBatch syncs for the rest of the test:
// one syncfs per group (on) or one fsync per file (off, as on kernels
// before 5.8).
func withGroupSyncfs(t *testing.T, on bool) {
	oldG, oldE := groupSyncfs, syncEachFile
	groupSyncfs, syncEachFile = on, !on
	t.Cleanup(func() { groupSyncfs, syncEachFile = oldG, oldE })
}
