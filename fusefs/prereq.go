package fusefs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// fuseDevice is the device every FUSE mount is served through.
const fuseDevice = "/dev/fuse"

var (
	// ErrNoFUSE is returned when /dev/fuse is missing or, as root, cannot
	// be opened (no fuse module, or a container without the device).
	ErrNoFUSE = errors.New("FUSE is not available")
	// ErrNoFusermount is returned when an ordinary user mounts or
	// unmounts and neither fusermount3 nor fusermount is installed.
	ErrNoFusermount = errors.New("fusermount3 not found")
)

// CheckPrerequisites returns an error wrapping ErrNoFUSE or
// ErrNoFusermount when this process could not mount: a cheap check to run
// before long work whose result is to be mounted. Mount checks again.
func CheckPrerequisites() error {
	_, err := checkPrerequisites()
	return err
}

// checkPrerequisites reports whether to mount directly (as root) or
// through fusermount3, and whether what that needs is there.
func checkPrerequisites() (direct bool, err error) {
	if os.Geteuid() == 0 {
		f, err := os.OpenFile(fuseDevice, os.O_RDWR, 0)
		if err != nil {
			return false, fmt.Errorf("opening %s: %w: %w", fuseDevice, ErrNoFUSE, unwrapPath(err))
		}
		f.Close()
		return true, nil
	}
	// fusermount3 is setuid root and opens the device itself, so an
	// ordinary user needs it to exist, not to be openable.
	if _, err := os.Stat(fuseDevice); err != nil {
		return false, fmt.Errorf("checking %s: %w: %w", fuseDevice, ErrNoFUSE, unwrapPath(err))
	}
	if _, err := fusermount(); err != nil {
		return false, err
	}
	return false, nil
}

// fusermount returns the path of fusermount3 (or the older fusermount),
// looked up as go-fuse does.
func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount", "/bin/fusermount3", "/bin/fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("looking for fusermount3 on PATH: %w", ErrNoFusermount)
}

// unwrapPath drops the *PathError wrapper, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func mountError(dir string, direct bool, err error) error {
	how := "through fusermount3"
	if direct {
		how = "directly"
	}
	return fmt.Errorf("mounting %s %s: %w", dir, how, err)
}
