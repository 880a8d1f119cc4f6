package mailaccess_test

import (
	"path/filepath"
	"testing"

	"github.com/unimail/unimail/mailaccess"
	"github.com/unimail/unimail/mailaccess/mailaccesstest"
)

func TestMemoryStateConformance(t *testing.T) {
	mailaccesstest.TestState(t, func(t *testing.T) mailaccess.State { return &mailaccess.MemoryState{} }, nil)
}

// fileState is a FileState that remembers its path, for Reopen.
type fileState struct {
	*mailaccess.FileState
	path string
}

func openFileState(t *testing.T, path string) fileState {
	t.Helper()
	s, err := mailaccess.OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return fileState{s, path}
}

func TestFileStateConformance(t *testing.T) {
	mailaccesstest.TestState(t, func(t *testing.T) mailaccess.State {
		return openFileState(t, filepath.Join(t.TempDir(), "state"))
	}, &mailaccesstest.StateOptions{
		Reopen: func(t *testing.T, s mailaccess.State) mailaccess.State {
			fs := s.(fileState)
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			return openFileState(t, fs.path)
		},
	})
}
