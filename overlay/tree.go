package overlay

import (
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"
)

// RootIno is the inode number of the tree's root directory.
const RootIno = 1

// Tree is the merged, immutable view of an image. Inode numbers run from
// RootIno to Len() without gaps and depend only on the layers' content:
// directories are numbered breadth first, children in name order, and a
// hardlinked file gets the number of its first path in that order.
// A Tree is never modified after Merge returns, so any number of goroutines
// may read it without locks.
type Tree struct {
	nodes   []Node   // nodes[ino-RootIno]
	dirents []Dirent // a directory's children are one sorted run
	xattrs  bool
}

// Dirent is one name in a directory. Slices of Dirents returned by a Tree
// are shared and must not be modified.
type Dirent struct {
	Name string
	Ino  uint64
}

// Node holds the attributes of one inode of the tree.
type Node struct {
	size   int64
	mtime  int64
	offset int64 // content in the layer's tar stream
	target string
	extra  *nodeExtra
	stino  uint64 // st_ino (see StIno)
	ino    uint32
	mode   uint32
	uid    uint32
	gid    uint32
	nlink  uint32
	nsec   uint32
	major  uint32
	minor  uint32
	layer  int32
	kids   uint32 // first child in Tree.dirents (directories)
	nkids  uint32
	parent uint32 // parent directory's inode (directories)
	typ    Type
}

// nodeExtra holds what few nodes have, to keep Node small.
type nodeExtra struct {
	xattrs []Xattr
	sparse []Extent
}

// Ino returns the node's inode number in its Tree: the dense number that
// Tree.Node takes (and fusefs uses as the kernel's node id).
func (n *Node) Ino() uint64 { return uint64(n.ino) }

// StIno returns the inode number shown to users (st_ino), shared by every
// path of a hardlink group. It is numbered by layer, top layer first, so
// that the top layers of an image fix it for their own entries while the
// lower layers are still unknown (see Partial): the root is 1; the entry
// with index i in layer L (counting every entry of the layer's tar,
// markers included) is 2 + i + the number of entries of the layers above
// L; a hardlink has its target's number, a directory that of its topmost
// entry; directories no layer has an entry for are numbered after all
// entries, breadth first in name order.
func (n *Node) StIno() uint64 { return n.stino }

// Type returns the node's type; never TypeHardlink.
func (n *Node) Type() Type { return n.typ }

// Mode returns the permission bits with setuid, setgid and sticky.
func (n *Node) Mode() uint32 { return n.mode }

// UID returns the numeric owner.
func (n *Node) UID() uint32 { return n.uid }

// GID returns the numeric group.
func (n *Node) GID() uint32 { return n.gid }

// Nlink returns the link count: the number of paths of a file, or
// 2 + the number of subdirectories of a directory.
func (n *Node) Nlink() uint32 { return n.nlink }

// Size returns the content size of a regular file and the target length of
// a symlink; 0 for other types.
func (n *Node) Size() int64 { return n.size }

// MTime returns the modification time.
func (n *Node) MTime() time.Time { return time.Unix(n.mtime, int64(n.nsec)) }

// MTimeUnix returns the modification time as seconds and nanoseconds.
func (n *Node) MTimeUnix() (sec int64, nsec uint32) { return n.mtime, n.nsec }

// Target returns a symlink's target, byte for byte as in the layer.
func (n *Node) Target() string { return n.target }

// Dev returns a device node's major and minor numbers.
func (n *Node) Dev() (major, minor uint32) { return n.major, n.minor }

// Xattrs returns the extended attributes, sorted by name. The slice is
// shared and must not be modified.
func (n *Node) Xattrs() []Xattr {
	if n.extra == nil {
		return nil
	}
	return n.extra.xattrs
}

// Xattr returns the value of the named attribute.
func (n *Node) Xattr(name string) (string, bool) {
	xs := n.Xattrs()
	i := sort.Search(len(xs), func(i int) bool { return xs[i].Name >= name })
	if i < len(xs) && xs[i].Name == name {
		return xs[i].Value, true
	}
	return "", false
}

// Layer returns the position of the layer the node's attributes (and a
// file's content) come from. A directory Merge created because an entry
// needed it reports that entry's layer; the root, when no layer has a "."
// entry, reports -1.
func (n *Node) Layer() int { return int(n.layer) }

// Offset returns where a regular file's content starts in its layer's
// uncompressed tar stream.
func (n *Node) Offset() int64 { return n.offset }

// Sparse returns a sparse file's data extents, or nil.
func (n *Node) Sparse() []Extent {
	if n.extra == nil {
		return nil
	}
	return n.extra.sparse
}

// Parent returns a directory's parent inode (the root is its own parent).
func (n *Node) Parent() uint64 { return uint64(n.parent) }

// FileMode returns type and permission bits in io/fs form.
func (n *Node) FileMode() fs.FileMode {
	m := fs.FileMode(n.mode & 0777)
	if n.mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.typ {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}

// Len returns the number of inodes.
func (t *Tree) Len() int { return len(t.nodes) }

// HasXattrs reports whether any node has an extended attribute.
func (t *Tree) HasXattrs() bool { return t.xattrs }

// Root returns the root directory.
func (t *Tree) Root() *Node { return &t.nodes[0] }

// Node returns the node with inode number ino, or nil.
func (t *Tree) Node(ino uint64) *Node {
	if ino < RootIno || ino-RootIno >= uint64(len(t.nodes)) {
		return nil
	}
	return &t.nodes[ino-RootIno]
}

// Children returns a directory's entries sorted by name (nil for other
// types). The slice is shared and must not be modified.
func (t *Tree) Children(dir *Node) []Dirent {
	return t.dirents[dir.kids : dir.kids+dir.nkids : dir.kids+dir.nkids]
}

// Lookup returns the child of dir called name, or nil.
func (t *Tree) Lookup(dir *Node, name string) *Node {
	kids := t.Children(dir)
	i, ok := slices.BinarySearchFunc(kids, name, func(d Dirent, name string) int {
		return strings.Compare(d.Name, name)
	})
	if !ok {
		return nil
	}
	return t.Node(kids[i].Ino)
}

// Get returns the node at path p ("" or "." for the root; a leading "/" is
// allowed) without following symlinks, or nil.
func (t *Tree) Get(p string) *Node {
	p, err := cleanName(p)
	if err != nil {
		return nil
	}
	n := t.Root()
	for p != "" && n != nil {
		var c string
		c, p, _ = strings.Cut(p, "/")
		n = t.Lookup(n, c)
	}
	return n
}

// Walk calls fn for every path of the tree, the root ("") first, then
// depth first with children in name order. A hardlinked file is visited
// once per path. Returning fs.SkipDir from fn skips a directory's children;
// any other error stops the walk and is returned.
func (t *Tree) Walk(fn func(path string, n *Node) error) error {
	err := t.walk("", t.Root(), fn)
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

func (t *Tree) walk(p string, n *Node, fn func(string, *Node) error) error {
	if err := fn(p, n); err != nil {
		if err == fs.SkipDir && n.typ == TypeDir {
			return nil
		}
		return err
	}
	for _, d := range t.Children(n) {
		if err := t.walk(joinPath(p, d.Name), t.Node(d.Ino), fn); err != nil {
			return err
		}
	}
	return nil
}
