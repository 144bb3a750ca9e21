package fsload

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

// Expect is what a mount of a tree must show, with the paths the readers
// pick from, by kind.
type Expect struct {
	tree    *overlay.Tree
	content overlay.LayerReader

	paths   []string // every path but the root
	dirs    []string // every directory; "" is the root
	files   []string // regular files
	links   []string // symlinks
	xattrs  []string // paths with extended attributes
	nonDirs []string // paths that are neither directories nor symlinks
}

// NewExpect indexes tree, whose file content is read through content.
func NewExpect(tree *overlay.Tree, content overlay.LayerReader) *Expect {
	e := &Expect{tree: tree, content: content}
	tree.Walk(func(p string, n *overlay.Node) error {
		if p != "" {
			e.paths = append(e.paths, p)
		}
		if len(n.Xattrs()) > 0 {
			e.xattrs = append(e.xattrs, p)
		}
		switch n.Type() {
		case overlay.TypeDir:
			e.dirs = append(e.dirs, p)
		case overlay.TypeSymlink:
			e.links = append(e.links, p)
		case overlay.TypeRegular:
			e.files = append(e.files, p)
			e.nonDirs = append(e.nonDirs, p)
		default:
			e.nonDirs = append(e.nonDirs, p)
		}
		return nil
	})
	return e
}

// Counts returns how many paths, directories, files and symlinks the
// tree has (a fixture check: a load over an empty tree proves nothing).
func (e *Expect) Counts() (paths, dirs, files, links int) {
	return len(e.paths), len(e.dirs), len(e.files), len(e.links)
}

func (e *Expect) node(p string) *overlay.Node {
	n := e.tree.Get(p)
	if n == nil {
		panic("fsload: no node at " + p) // the path lists come from the tree
	}
	return n
}

var typeBits = map[overlay.Type]uint32{
	overlay.TypeRegular: unix.S_IFREG,
	overlay.TypeDir:     unix.S_IFDIR,
	overlay.TypeSymlink: unix.S_IFLNK,
	overlay.TypeChar:    unix.S_IFCHR,
	overlay.TypeBlock:   unix.S_IFBLK,
	overlay.TypeFifo:    unix.S_IFIFO,
}

// wantSize is st_size as fusefs/doc.go states it.
func wantSize(n *overlay.Node) int64 {
	switch n.Type() {
	case overlay.TypeRegular, overlay.TypeSymlink:
		return n.Size()
	case overlay.TypeDir:
		return 4096
	}
	return 0
}

// checkStat compares what lstat or fstat returned for p with the tree.
func checkStat(p string, n *overlay.Node, st *unix.Stat_t) error {
	sec, nsec := n.MTimeUnix()
	type field struct {
		name      string
		got, want any
	}
	fields := []field{
		{"mode", fmt.Sprintf("%o", st.Mode), fmt.Sprintf("%o", typeBits[n.Type()]|n.Mode())},
		{"uid", st.Uid, n.UID()},
		{"gid", st.Gid, n.GID()},
		{"size", st.Size, wantSize(n)},
		{"mtime", [2]int64{st.Mtim.Sec, st.Mtim.Nsec}, [2]int64{sec, int64(nsec)}},
		{"ino", st.Ino, n.StIno()},
		{"nlink", uint64(st.Nlink), uint64(n.Nlink())},
	}
	if t := n.Type(); t == overlay.TypeChar || t == overlay.TypeBlock {
		fields = append(fields, field{"rdev", st.Rdev, unix.Mkdev(n.Dev())})
	}
	for _, f := range fields {
		if f.got != f.want {
			return fmt.Errorf("%s: %s %v, want %v", p, f.name, f.got, f.want)
		}
	}
	return nil
}

// checkListing compares a directory listing (names in order, types) with
// the tree.
func (e *Expect) checkListing(p string, got []os.DirEntry) error {
	kids := e.tree.Children(e.node(p))
	if len(got) != len(kids) {
		return fmt.Errorf("readdir %s: %d entries, want %d", show(p), len(got), len(kids))
	}
	for i, k := range kids {
		n := e.tree.Node(k.Ino)
		if got[i].Name() != k.Name {
			return fmt.Errorf("readdir %s: entry %d is %q, want %q", show(p), i, got[i].Name(), k.Name)
		}
		if want := n.FileMode().Type(); got[i].Type() != want {
			return fmt.Errorf("readdir %s: %s has type %v, want %v", show(p), k.Name, got[i].Type(), want)
		}
	}
	return nil
}

// checkXattrs lists and reads p's extended attributes and compares them
// with the tree's.
func (e *Expect) checkXattrs(root, p string) error {
	full := filepath.Join(root, p)
	want := e.node(p).Xattrs()
	buf := make([]byte, 64<<10)
	sz, err := unix.Llistxattr(full, buf)
	if err != nil {
		return fmt.Errorf("llistxattr %s: %w", p, err)
	}
	var names []string
	for _, b := range bytes.Split(buf[:sz], []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	slices.Sort(names)
	var wantNames []string
	for _, x := range want {
		wantNames = append(wantNames, x.Name)
	}
	if !slices.Equal(names, wantNames) {
		return fmt.Errorf("llistxattr %s: %q, want %q", p, names, wantNames)
	}
	for _, x := range want {
		n, err := unix.Lgetxattr(full, x.Name, buf)
		if err != nil {
			return fmt.Errorf("lgetxattr %s %s: %w", p, x.Name, err)
		}
		if string(buf[:n]) != x.Value {
			return fmt.Errorf("lgetxattr %s %s: %q, want %q", p, x.Name, buf[:n], x.Value)
		}
	}
	return nil
}

// checkContent compares the n bytes read at off from p with the tree's
// content there.
func (e *Expect) checkContent(p string, got []byte, asked int, off int64, want []byte) error {
	node := e.node(p)
	wantLen := max(0, min(int64(asked), node.Size()-off))
	if int64(len(got)) != wantLen {
		return fmt.Errorf("pread %s at %d of %d bytes: got %d bytes, want %d (size %d)", p, off, asked, len(got), wantLen, node.Size())
	}
	if wantLen == 0 {
		return nil
	}
	m, err := node.ReadAt(e.content, want[:wantLen], off)
	if int64(m) != wantLen {
		return fmt.Errorf("reading the expected content of %s at %d: %d bytes, %v", p, off, m, err)
	}
	if !bytes.Equal(got, want[:wantLen]) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("pread %s at %d of %d bytes: byte %d (offset %d) is %#x, want %#x", p, off, asked, i, off+int64(i), got[i], want[i])
	}
	return nil
}

func show(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
