//go:build !unix

package bench

import (
	"context"
	"errors"
	"os/exec"
)

// spawned needs process groups and getrusage: the benchmark runs on Unix
// systems only.
func spawned(context.Context, *exec.Cmd, []string) (Sample, error) {
	return Sample{}, errors.New("the benchmark runs on Unix systems only")
}

func raiseNoFile() {}
