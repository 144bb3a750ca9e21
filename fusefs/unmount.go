package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Unmount unmounts the FUSE mount at dir, whether or not its server is
// still running: a mount whose server died ("transport endpoint is not
// connected") is unmounted the same way. While the mount is busy it
// retries for a few seconds; a busy mount whose server is gone is then
// detached lazily (nobody can use it anyway), a busy live one is left
// alone with an error wrapping ErrBusy. Root unmounts with umount2; an
// ordinary user through fusermount3 -u, which only unmounts the user's
// own mounts.
func Unmount(dir string) error {
	return unmount(dir, false)
}

// UnmountLazy detaches the mount at dir at once, even while busy; the
// kernel finishes the unmount when the last user lets go (MNT_DETACH,
// fusermount3 -u -z).
func UnmountLazy(dir string) error {
	return unmount(dir, true)
}

func unmount(dir string, lazy bool) error {
	abs, err := resolve(dir)
	if err != nil {
		return &MountpointError{dir, ProblemMissing, err}
	}
	m, ok, err := findMount(abs)
	if err != nil {
		return err
	}
	if !ok {
		return &MountpointError{dir, ProblemNotMounted, nil}
	}
	if m.FSType != "fuse" && !strings.HasPrefix(m.FSType, "fuse.") {
		return &MountpointError{dir, ProblemNotFUSE + " (type " + m.FSType + ")", nil}
	}
	if lazy {
		return unmountOnce(abs, true)
	}
	deadline := time.Now().Add(busyRetry)
	for {
		err := unmountOnce(abs, false)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		if dead(abs) {
			return unmountOnce(abs, true)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dead reports whether the mount at dir has lost its server, or has one
// that no longer answers. statfs is the probe because the kernel never
// caches its answer: lstat of a dead mount succeeds as long as the
// attributes are cached (forever, here). A wedged server would make the
// probe wait forever, so it gets probeTimeout.
func dead(dir string) bool {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(dir, &st)
	}()
	select {
	case err := <-done:
		// ENOTCONN once the connection is gone; ECONNABORTED when the
		// probe was queued as it was being aborted (a server killed a
		// moment ago, whose descriptors are still being closed).
		return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
	case <-time.After(probeTimeout):
		return true
	}
}

// probeTimeout bounds the statfs probe of a mount.
const probeTimeout = 5 * time.Second

func unmountOnce(dir string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		err := unix.Unmount(dir, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmounting %s: %w", dir, ErrBusy)
		}
		return fmt.Errorf("unmounting %s: %w", dir, err)
	}
	bin, err := fusermount()
	if err != nil {
		return err
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append(args, dir)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return fmt.Errorf("unmounting %s: %w", dir, ErrBusy)
		}
		return fmt.Errorf("unmounting %s with %s: %s: %w", dir, bin, msg, err)
	}
	return nil
}
