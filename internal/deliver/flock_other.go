//go:build !unix

package deliver

import "os"

// tryFlock has nothing to take where there is no flock: the dotlock alone
// guards the mbox.
func tryFlock(*os.File) (bool, error) { return true, nil }

func funlock(*os.File) {}
