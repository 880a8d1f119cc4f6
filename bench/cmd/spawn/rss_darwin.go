package main

import "syscall"

// maxRSSBytes returns ru_maxrss in bytes (macOS counts bytes).
func maxRSSBytes(ru *syscall.Rusage) int64 { return int64(ru.Maxrss) }
