//go:build unix && !linux

package dovecottest

import "syscall"

// sysProcAttr puts Dovecot in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
