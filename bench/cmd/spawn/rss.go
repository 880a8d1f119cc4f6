//go:build unix && !darwin

package main

import "syscall"

// maxRSSBytes returns ru_maxrss in bytes (Linux and the BSDs count KiB).
func maxRSSBytes(ru *syscall.Rusage) int64 { return int64(ru.Maxrss) * 1024 }
