//go:build !unix

package dovecottest

import "syscall"

// sysProcAttr has nothing to set where Dovecot does not run.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// groupAlive has no process groups to look at where Dovecot does not run.
func groupAlive(int) bool { return false }

// killGroup has no process groups to signal where Dovecot does not run.
func killGroup(int) {}
