//go:build !unix

package mailaccess

import "os"

// fileID stands in for the inode number where there is none: the
// modification time changes when the file is rewritten.
func fileID(fi os.FileInfo) uint64 { return uint64(fi.ModTime().UnixNano()) }
