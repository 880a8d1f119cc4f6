//go:build linux

package pgtest

import "syscall"

// sysProcAttr runs postgres as cred (nil: this process's user), in a
// process group of its own, and has the kernel send it SIGINT (a fast
// shutdown) if the test process dies without running its cleanups.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
}
