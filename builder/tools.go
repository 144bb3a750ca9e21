package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// Tools are the e2fsprogs programs Build runs, by path.
type Tools struct {
	Mkfs    string // mkfs.ext4 (or mke2fs)
	Fsck    string // e2fsck
	Debugfs string // debugfs
	// Version is mkfs's e2fsprogs version, e.g. "1.47.0".
	Version string
}

// sbinDirs are searched after PATH: Debian keeps e2fsprogs in /usr/sbin
// and /sbin, which are not on an ordinary user's PATH.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// minVersion is the first e2fsprogs whose mke2fs has -d.
var minVersion = [2]int{1, 43}

// FindTools locates mkfs.ext4, e2fsck and debugfs, fills in the fields of
// have that are empty, and checks that mkfs.ext4 can populate a
// filesystem from a directory (-d, e2fsprogs 1.43). Errors wrap
// ErrMissingTool.
func FindTools(ctx context.Context, have Tools) (Tools, error) {
	t := have
	for _, f := range []struct {
		path *string
		name string
	}{{&t.Mkfs, "mkfs.ext4"}, {&t.Fsck, "e2fsck"}, {&t.Debugfs, "debugfs"}} {
		if *f.path != "" {
			continue
		}
		p, err := lookTool(f.name)
		if err != nil {
			return t, err
		}
		*f.path = p
	}
	if t.Version == "" {
		v, err := mkfsVersion(ctx, t.Mkfs)
		if err != nil {
			return t, err
		}
		t.Version = v
	}
	return t, nil
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found on PATH or in %v", ErrMissingTool, name, sbinDirs)
}

var versionRE = regexp.MustCompile(`mke2fs (\d+)\.(\d+)(?:\.(\d+))?`)

// mkfsVersion runs mkfs -V and checks that it is e2fsprogs' mke2fs,
// recent enough for -d.
func mkfsVersion(ctx context.Context, mkfs string) (string, error) {
	cmd := exec.CommandContext(ctx, mkfs, "-V")
	cmd.Dir = "/"
	cmd.Env = baseEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return "", fmt.Errorf("%w: running %s -V: %v", ErrMissingTool, mkfs, err)
	}
	return parseMkfsVersion(mkfs, out.String())
}

// parseMkfsVersion reads mke2fs's version banner and checks it has -d.
func parseMkfsVersion(mkfs, banner string) (string, error) {
	m := versionRE.FindStringSubmatch(banner)
	if m == nil {
		return "", fmt.Errorf("%w: %s is not e2fsprogs' mke2fs (no version in %q)", ErrMissingTool, mkfs, summarize(banner, 2))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	v := m[1] + "." + m[2]
	if m[3] != "" {
		v += "." + m[3]
	}
	if major < minVersion[0] || major == minVersion[0] && minor < minVersion[1] {
		return v, fmt.Errorf("%w: %s is e2fsprogs %s, which cannot populate a filesystem (-d needs 1.43 or later)", ErrMissingTool, mkfs, v)
	}
	return v, nil
}
