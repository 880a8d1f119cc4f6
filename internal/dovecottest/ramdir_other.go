//go:build !linux

package dovecottest

// ramDir returns "": outside Linux the harness keeps its files under
// t.TempDir().
func ramDir(bool) string { return "" }
