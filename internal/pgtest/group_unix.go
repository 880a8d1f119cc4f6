//go:build unix

package pgtest

import "syscall"

// groupAlive reports whether a process is left in the process group pgid.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// killGroup sends SIGKILL to every process in the process group pgid.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
