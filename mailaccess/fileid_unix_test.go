//go:build unix

package mailaccess

import (
	"os"
	"syscall"
)

// fileID is the inode number of fi.
func fileID(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
