package mailaccess

import (
	"os"
	"syscall"
)

// reserve allocates n bytes of f past off without changing its size
// (fallocate with FALLOC_FL_KEEP_SIZE), so that appends into that room
// cannot fail for want of space. It reports false when the space is not
// there or the file system cannot reserve it.
func reserve(f *os.File, off, n int64) bool {
	const keepSize = 0x1 // FALLOC_FL_KEEP_SIZE
	for {
		err := syscall.Fallocate(int(f.Fd()), keepSize, off, n)
		if err != syscall.EINTR {
			return err == nil
		}
	}
}
