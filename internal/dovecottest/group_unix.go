//go:build unix

package dovecottest

import "syscall"

// groupAlive reports whether any live (not zombie) process is left in the
// process group pgid. Where /proc is missing it asks the kernel, which also
// counts zombies.
func groupAlive(pgid int) bool {
	if procs, ok := procList(); ok {
		for _, p := range procs {
			if p.pgrp == pgid && p.state != 'Z' {
				return true
			}
		}
		return false
	}
	return syscall.Kill(-pgid, 0) == nil
}

// killGroup sends SIGKILL to every process in the process group pgid.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
