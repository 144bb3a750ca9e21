// Package lockdir makes temporary directories that stay locked (flock on
// the directory) for as long as the process that made them lives, and
// removes those whose process died: a killed process cannot clean up, but
// the kernel drops its locks, so an unlocked directory is a dead one's.
//
// A directory is judged only by its lock: Sweep never removes a directory
// someone holds, nor one it cannot open (another user's).
package lockdir

import (
	"errors"
	"fmt"
	"io/fs"
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
// it. Until it is locked, another process's Sweep may take it for a dead
// one's and remove it: Create then makes another.
func Create(parent, prefix string) (*Dir, error) {
	for try := 0; ; try++ {
		path, err := os.MkdirTemp(parent, prefix)
		if err != nil {
			return nil, err
		}
		f, err := lock(path, syscall.LOCK_EX)
		switch {
		case err == nil && stillThere(path, f):
			return &Dir{Path: path, f: f}, nil
		case err == nil: // locked after a Sweep removed it
			f.Close()
			err = fmt.Errorf("locking %s: removed by a sweep meanwhile", path)
		case !errors.Is(err, fs.ErrNotExist): // not a Sweep's doing
			os.RemoveAll(path)
			return nil, err
		}
		if try == 2 {
			return nil, err
		}
	}
}

// stillThere reports whether path still names the directory f is open on
// (a Sweep that got its lock first has removed it).
func stillThere(path string, f *os.File) bool {
	a, err := os.Lstat(path)
	if err != nil {
		return false
	}
	b, err := f.Stat()
	return err == nil && os.SameFile(a, b)
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
