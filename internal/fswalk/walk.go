package fswalk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Type is a file type as seen by lstat.
type Type string

const (
	Dir     Type = "dir"
	File    Type = "file"
	Symlink Type = "symlink"
	Char    Type = "char"
	Block   Type = "block"
	Fifo    Type = "fifo"
	Socket  Type = "socket"
)

// Record is what Walk learned about one path.
type Record struct {
	Path   string // slash-separated, relative to the root; "." is the root
	Type   Type
	Perm   uint32 // permission bits incl. setuid 04000, setgid 02000, sticky 01000
	UID    uint32
	GID    uint32
	Size   int64
	SHA256 string // hex, regular files only (unless WalkOptions.NoContent)
	Target string // symlinks only
	Major  uint32 // char and block devices only
	Minor  uint32
	Xattrs map[string]string // name → raw value
	MTime  time.Time
	Nlink  uint64
	// Links is the sorted list of paths sharing this inode, when there is
	// more than one of them in the walk (non-directories only).
	Links []string
}

// WalkOptions tunes Walk. The zero value reads every xattr but trusted.*.
type WalkOptions struct {
	Trusted      bool     // also read trusted.* (needs CAP_SYS_ADMIN)
	IgnoreXattrs []string // xattr names not to record, e.g. "security.selinux"
	NoContent    bool     // metadata only: do not read (hash) regular files
}

// Walk records root and everything under it.
func Walk(root string, opts WalkOptions) ([]Record, error) {
	var recs []Record
	groups := map[[2]uint64][]int{} // (dev, ino) → record indexes
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		r, st, err := record(p, filepath.ToSlash(rel), opts)
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		if r.Type != Dir {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			groups[key] = append(groups[key], len(recs))
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", root, err)
	}
	linkGroups(recs, groups)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
	return recs, nil
}

func linkGroups(recs []Record, groups map[[2]uint64][]int) {
	for _, idx := range groups {
		if len(idx) < 2 {
			continue
		}
		var paths []string
		for _, i := range idx {
			paths = append(paths, recs[i].Path)
		}
		sort.Strings(paths)
		for _, i := range idx {
			recs[i].Links = paths
		}
	}
}

func record(p, rel string, opts WalkOptions) (Record, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Record{}, nil, fmt.Errorf("lstat: %w", err)
	}
	r := Record{
		Path:  rel,
		Type:  typeOf(st.Mode),
		Perm:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		Size:  st.Size,
		MTime: time.Unix(st.Mtim.Unix()),
		Nlink: uint64(st.Nlink),
	}
	var err error
	switch r.Type {
	case File:
		if !opts.NoContent {
			r.SHA256, err = hashFile(p)
		}
	case Symlink:
		r.Target, err = os.Readlink(p)
	case Char, Block:
		r.Major, r.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	if err != nil {
		return Record{}, nil, err
	}
	r.Xattrs, err = xattrs(p, opts)
	return r, &st, err
}

func typeOf(mode uint32) Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	case unix.S_IFCHR:
		return Char
	case unix.S_IFBLK:
		return Block
	case unix.S_IFIFO:
		return Fifo
	case unix.S_IFSOCK:
		return Socket
	}
	return File
}

func hashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func xattrs(p string, opts WalkOptions) (map[string]string, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		if skipXattr(n, opts) {
			continue
		}
		v, err := getXattr(p, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed while we looked
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", n, err)
		}
		out[n] = v
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func skipXattr(name string, opts WalkOptions) bool {
	if strings.HasPrefix(name, "trusted.") && !opts.Trusted {
		return true
	}
	for _, ig := range opts.IgnoreXattrs {
		if ig == name {
			return true
		}
	}
	return false
}

func listXattrs(p string) ([]string, error) {
	buf, err := sizedRead(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	var names []string
	for _, n := range strings.Split(string(buf), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func getXattr(p, name string) (string, error) {
	buf, err := sizedRead(func(b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
	return string(buf), err
}

// sizedRead calls f with a nil buffer to learn the size, then reads,
// retrying if the value grew in between.
func sizedRead(f func([]byte) (int, error)) ([]byte, error) {
	for i := 0; i < 5; i++ {
		n, err := f(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		b := make([]byte, n)
		n, err = f(b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
	return nil, unix.ERANGE
}
