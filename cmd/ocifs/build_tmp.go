package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/internal/lockdir"
)

// A build mounts its image on $TMPDIR/ocifs-build-*/mnt. The directory
// above the mount point stays locked while the build lives
// (internal/lockdir), so a later build can tell what a killed one left
// (unlocked: a mount point, perhaps with a dead mount on it) and remove
// it.
const buildTmpPrefix = "ocifs-build-"

type buildTmp struct{ *lockdir.Dir }

func (b buildTmp) mountPoint() string { return filepath.Join(b.Path, "mnt") }

// newBuildTmp sweeps what killed builds left, then makes and locks this
// build's directory and mount point.
func newBuildTmp(log *slog.Logger) (buildTmp, error) {
	sweepBuildTmps(log)
	d, err := lockdir.Create("", buildTmpPrefix)
	if err != nil {
		return buildTmp{}, fmt.Errorf("creating a mount point: %w", err)
	}
	b := buildTmp{d}
	if err := os.Mkdir(b.mountPoint(), 0o700); err != nil {
		d.Remove()
		return buildTmp{}, fmt.Errorf("creating a mount point: %w", err)
	}
	return b, nil
}

// sweepBuildTmps removes the unlocked build directories in $TMPDIR,
// detaching the dead mount a killed build may have left on one.
func sweepBuildTmps(log *slog.Logger) {
	detach := func(dir string) {
		mnt := filepath.Join(dir, "mnt")
		if err := fusefs.UnmountLazy(mnt); err == nil {
			log.Info("detached the mount a killed build left", "dir", mnt)
		}
	}
	lockdir.Sweep("", buildTmpPrefix, detach, func(dir string, err error) {
		log.Debug("removed what a killed build left", "dir", dir, "err", err)
	})
}
