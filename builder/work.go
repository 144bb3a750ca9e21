package builder

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ocifs/ocifs/internal/lockdir"
)

// A build works in a temporary directory next to its output, locked for
// as long as the build lives (internal/lockdir), so that a later build of
// the same output can tell the directory of a killed build (unlocked)
// from one still running, and remove it.

func workPrefix(out string) string { return "." + filepath.Base(out) + ".ocifs-build-" }

// newWorkDir removes what killed builds of out left next to it, then
// creates and locks this build's directory.
func newWorkDir(out string, log *slog.Logger) (*lockdir.Dir, error) {
	sweepWorkDirs(out, log)
	d, err := lockdir.Create(filepath.Dir(out), workPrefix(out))
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory next to %s: %w", out, noSpace(err))
	}
	return d, nil
}

// sweepWorkDirs removes the unlocked work directories of out: those of
// builds that were killed before they could clean up.
func sweepWorkDirs(out string, log *slog.Logger) {
	lockdir.Sweep(filepath.Dir(out), workPrefix(out), nil, func(dir string, err error) {
		log.Info("removed what a killed build left", "dir", dir, "err", err)
	})
}
