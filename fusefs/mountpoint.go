package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MountpointError says why a directory cannot be mounted on or unmounted.
type MountpointError struct {
	Dir     string
	Problem string // "does not exist", "is not empty", ...
	Err     error  // the underlying error, if any
}

func (e *MountpointError) Error() string { return e.Dir + " " + e.Problem }
func (e *MountpointError) Unwrap() error { return e.Err }

// Problems a MountpointError reports; callers compare Problem with them.
const (
	ProblemMissing    = "does not exist"
	ProblemNotDir     = "is not a directory"
	ProblemNotEmpty   = "is not empty"
	ProblemMounted    = "is already a mount point"
	ProblemDeadMount  = "is a mount whose server is gone or does not answer (transport endpoint is not connected)"
	ProblemNotMounted = "is not a mount point"
	ProblemNotFUSE    = "is not a FUSE mount"
)

// CheckMountpoint returns a *MountpointError unless dir is an existing,
// empty directory that is not already a mount point.
func CheckMountpoint(dir string) error {
	abs, err := resolve(dir)
	if err != nil {
		return &MountpointError{dir, ProblemMissing, err}
	}
	if _, ok, err := findMount(abs); err != nil {
		return err
	} else if ok {
		if dead(abs) {
			return &MountpointError{dir, ProblemDeadMount, syscall.ENOTCONN}
		}
		return &MountpointError{dir, ProblemMounted, nil}
	}
	fi, err := os.Lstat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &MountpointError{dir, ProblemMissing, err}
	case err != nil:
		return fmt.Errorf("checking mount point %s: %w", dir, err)
	case !fi.IsDir():
		return &MountpointError{dir, ProblemNotDir, nil}
	}
	empty, err := isEmpty(abs)
	if err != nil {
		return fmt.Errorf("checking mount point %s: %w", dir, err)
	}
	if !empty {
		return &MountpointError{dir, ProblemNotEmpty, nil}
	}
	return nil
}

// resolve makes dir absolute and resolves symlinks, as mount(2) does and
// as the kernel lists mount points. When dir itself cannot be stat'ed (a
// dead FUSE mount answers ENOTCONN) only its parent is resolved.
func resolve(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		return p, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Point  string
	FSType string
	Source string
}

// findMount returns the last (topmost) mount at point.
func findMount(point string) (mountEntry, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, false, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	var found mountEntry
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, valid := parseMountinfo(sc.Text()); valid && m.Point == point {
			found, ok = m, true
		}
	}
	if err := sc.Err(); err != nil {
		return mountEntry{}, false, fmt.Errorf("reading the mount table: %w", err)
	}
	return found, ok, nil
}

// parseMountinfo parses "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
func parseMountinfo(line string) (mountEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mountEntry{}, false
	}
	a, b := strings.Fields(pre), strings.Fields(post)
	if len(a) < 5 || len(b) < 2 {
		return mountEntry{}, false
	}
	return mountEntry{Point: unescapeOctal(a[4]), FSType: b[0], Source: unescapeOctal(b[1])}, true
}

// unescapeOctal undoes the kernel's \ooo escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
