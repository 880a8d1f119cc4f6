//go:build linux

package dovecottest

import (
	"os"
	"syscall"
)

// minRAMFree is the free space /dev/shm must have for the harness to keep
// a server's files there (tests may store messages of 100 MiB and more).
const minRAMFree = 1 << 30

// ramDir creates a directory on /dev/shm (tmpfs) when onDisk is false and
// /dev/shm has at least minRAMFree bytes free, and returns "" otherwise.
// Creating thousands of Maildir files on tmpfs takes milliseconds, where
// some disks take seconds.
func ramDir(onDisk bool) string {
	if onDisk {
		return ""
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || uint64(st.Bavail)*uint64(st.Bsize) < minRAMFree {
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "dovecottest-")
	if err != nil {
		return ""
	}
	return d
}
