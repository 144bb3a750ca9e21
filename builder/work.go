package builder

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// workDir is the temporary directory a build makes next to its output.
// It stays locked (flock on the directory) for as long as the build
// lives, so a later build of the same output can tell the directory of a
// killed build (unlocked) from one still running, and remove it.
type workDir struct {
	path string
	f    *os.File
}

func workPrefix(out string) string { return "." + filepath.Base(out) + ".ocifs-build-" }

// newWorkDir removes what killed builds of out left next to it, then
// creates and locks this build's directory.
func newWorkDir(out string, log *slog.Logger) (*workDir, error) {
	sweepWorkDirs(out, log)
	path, err := os.MkdirTemp(filepath.Dir(out), workPrefix(out))
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory next to %s: %w", out, noSpace(err))
	}
	f, err := lockDir(path, syscall.LOCK_EX)
	if err != nil {
		os.RemoveAll(path)
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &workDir{path: path, f: f}, nil
}

// remove deletes the directory and lets go of its lock.
func (w *workDir) remove() {
	os.RemoveAll(w.path)
	w.f.Close()
}

// sweepWorkDirs removes the unlocked work directories of out: those of
// builds that were killed before they could clean up.
func sweepWorkDirs(out string, log *slog.Logger) {
	ents, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), workPrefix(out)) {
			continue
		}
		p := filepath.Join(filepath.Dir(out), e.Name())
		f, err := lockDir(p, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			continue // a running build's, or not ours to judge
		}
		err = os.RemoveAll(p)
		f.Close()
		log.Info("removed what a killed build left", "dir", p, "err", err)
	}
}

func lockDir(path string, how int) (*os.File, error) {
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
