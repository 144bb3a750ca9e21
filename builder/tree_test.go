package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/overlay"
)

// dirTree reads a plain directory into an overlay tree, as if it were an
// image of one layer: what Build sizes from when the source is not a
// mount. Content offsets are meaningless (nothing reads through them).
func dirTree(t testing.TB, dir string) *overlay.Tree {
	t.Helper()
	recs, err := fswalk.Walk(dir, fswalk.WalkOptions{})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	var l overlay.Layer
	seen := map[string]bool{}
	for _, r := range recs {
		l.Entries = append(l.Entries, entryOf(r, seen))
	}
	tree, err := overlay.Merge([]*overlay.Layer{&l})
	if err != nil {
		t.Fatalf("merging %s: %v", dir, err)
	}
	return tree
}

func entryOf(r fswalk.Record, seen map[string]bool) overlay.Entry {
	e := overlay.Entry{
		Name: r.Path, Mode: r.Perm, UID: r.UID, GID: r.GID,
		MTime: r.MTime.Unix(), MTimeNsec: uint32(r.MTime.Nanosecond()),
		Devmajor: r.Major, Devminor: r.Minor, Linkname: r.Target,
	}
	if r.Path == "." {
		e.Name = "./"
	}
	for k, v := range r.Xattrs {
		e.Xattrs = append(e.Xattrs, overlay.Xattr{Name: k, Value: v})
	}
	sortXattrs(e.Xattrs)
	switch r.Type {
	case fswalk.Dir:
		e.Type = overlay.TypeDir
	case fswalk.File:
		e.Type, e.Size = overlay.TypeRegular, r.Size
	case fswalk.Symlink:
		e.Type = overlay.TypeSymlink
	case fswalk.Char:
		e.Type = overlay.TypeChar
	case fswalk.Block:
		e.Type = overlay.TypeBlock
	case fswalk.Fifo:
		e.Type = overlay.TypeFifo
	}
	if len(r.Links) > 1 && seen[r.Links[0]] {
		e.Type, e.Size, e.Linkname = overlay.TypeHardlink, 0, r.Links[0]
	}
	seen[r.Path] = true
	return e
}

func sortXattrs(xs []overlay.Xattr) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j].Name < xs[j-1].Name; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// fixture writes files into a directory: a tiny language for test trees.
type fixture struct {
	t   testing.TB
	dir string
}

func newFixture(t testing.TB) *fixture {
	return &fixture{t: t, dir: t.TempDir()}
}

func (f *fixture) path(name string) string {
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) file(name string, content []byte, mode os.FileMode) {
	p := f.path(name)
	if err := os.WriteFile(p, content, mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask, setuid
		f.t.Fatal(err)
	}
}

func (f *fixture) mkdir(name string, mode os.FileMode) {
	p := f.path(name)
	if err := os.Mkdir(p, mode); err != nil && !os.IsExist(err) {
		f.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) symlink(name, target string) {
	if err := os.Symlink(target, f.path(name)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) hardlink(name, target string) {
	if err := os.Link(filepath.Join(f.dir, target), f.path(name)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) chown(name string, uid, gid int) {
	if err := os.Lchown(filepath.Join(f.dir, name), uid, gid); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) mknod(name string, mode uint32, major, minor uint32) {
	dev := int(major<<8 | minor&0xff | (minor&^0xff)<<12)
	if err := syscall.Mknod(f.path(name), mode, dev); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) xattr(name, attr string, value []byte) {
	if err := syscall.Setxattr(filepath.Join(f.dir, name), attr, value, 0); err != nil {
		f.t.Fatal(err)
	}
}

// name makes the i-th of many file names, n characters long.
func name(i, n int) string { return fmt.Sprintf("f%0*d", n-1, i) }
