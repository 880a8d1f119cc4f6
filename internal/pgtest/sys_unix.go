//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs postgres as cred (nil: this process's user), in a
// process group of its own.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
