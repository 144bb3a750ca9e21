package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ocifs/ocifs/fusefs"
)

// A build mounts its image on $TMPDIR/ocifs-build-*/mnt. The directory
// above the mount point stays locked (flock) while the build lives, so a
// later build can tell what a killed one left (unlocked: a mount point,
// perhaps with a dead mount on it) and remove it.
const buildTmpPrefix = "ocifs-build-"

type buildTmp struct {
	dir  string
	lock *os.File
}

func (b *buildTmp) mountPoint() string { return filepath.Join(b.dir, "mnt") }

// newBuildTmp sweeps what killed builds left, then makes and locks this
// build's directory and mount point.
func newBuildTmp(log *slog.Logger) (*buildTmp, error) {
	sweepBuildTmps(log)
	dir, err := os.MkdirTemp("", buildTmpPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating a mount point: %w", err)
	}
	b := &buildTmp{dir: dir}
	if b.lock, err = lockedDir(dir, syscall.LOCK_EX); err == nil {
		err = os.Mkdir(b.mountPoint(), 0o700)
	}
	if err != nil {
		b.remove()
		return nil, fmt.Errorf("creating a mount point: %w", err)
	}
	return b, nil
}

func (b *buildTmp) remove() {
	os.RemoveAll(b.dir)
	if b.lock != nil {
		b.lock.Close()
	}
}

// sweepBuildTmps removes the unlocked build directories in $TMPDIR,
// detaching the dead mount a killed build may have left on one.
func sweepBuildTmps(log *slog.Logger) {
	tmp := os.TempDir()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), buildTmpPrefix) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		lock, err := lockedDir(dir, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			continue // a running build's, another user's, or not a directory of ours
		}
		mnt := filepath.Join(dir, "mnt")
		if err := fusefs.UnmountLazy(mnt); err == nil {
			log.Info("detached the mount a killed build left", "dir", mnt)
		}
		err = os.RemoveAll(dir)
		lock.Close()
		log.Debug("removed what a killed build left", "dir", dir, "err", err)
	}
}

func lockedDir(path string, how int) (*os.File, error) {
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
