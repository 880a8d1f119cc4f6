//go:build !unix

package mailaccess

import (
	"errors"
	"os"
)

// lockFile creates path exclusively. A crash leaves the lock file behind;
// the error says so, and removing the file releases it.
func lockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, newError("state lock", ErrInUse, "", errors.New("the state file is in use (or a crashed run left "+path+"; remove it if no run is active)"))
		}
		return nil, stateErr("lock", err)
	}
	f.Close()
	return func() error { return os.Remove(path) }, nil
}
