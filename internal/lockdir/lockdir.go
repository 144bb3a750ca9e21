// Package lockdir makes temporary directories that stay locked (flock on
// the directory) for as long as the process that made them lives, and
// removes those whose process died: a killed process cannot clean up, but
// the kernel drops its locks, so an unlocked directory is a dead one's.
//
// A directory is judged only by its lock: Sweep never removes a directory
// someone holds, nor one it cannot open (another user's).
package lockdir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Dir is a locked temporary directory.
type Dir struct {
	Path string
	f    *os.File
}

// Create makes a directory in parent (os.MkdirTemp's rules: "" is the
// temp directory) named prefix followed by random characters, and locks
// it.
func Create(parent, prefix string) (*Dir, error) {
	path, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	f, err := lock(path, syscall.LOCK_EX)
	if err != nil {
		os.RemoveAll(path)
		return nil, err
	}
	return &Dir{Path: path, f: f}, nil
}

// Remove deletes the directory and its contents, then lets go of the
// lock. It is safe to call on a nil Dir.
func (d *Dir) Remove() error {
	if d == nil {
		return nil
	}
	err := os.RemoveAll(d.Path)
	d.f.Close()
	return err
}

// Sweep removes the directories in parent whose names start with prefix
// and that nobody holds locked. Before removing one it calls clean (if
// not nil) with its path, under the lock, so that the caller can undo
// what a dead process may have left inside (a mount); after, report (if
// not nil) with the path and RemoveAll's error.
func Sweep(parent, prefix string, clean func(path string), report func(path string, err error)) {
	if parent == "" {
		parent = os.TempDir()
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		f, err := lock(p, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			continue // held by a live process, or not ours to open
		}
		if clean != nil {
			clean(p)
		}
		err = os.RemoveAll(p)
		f.Close()
		if report != nil {
			report(p, err)
		}
	}
}

func lock(path string, how int) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
