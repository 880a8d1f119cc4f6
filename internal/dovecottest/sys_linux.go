//go:build linux

package dovecottest

import "syscall"

// sysProcAttr puts Dovecot in a process group of its own and has the kernel
// send it SIGTERM if the test process dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
