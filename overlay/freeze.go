package overlay

import (
	"slices"
)

// freeze turns the merge's mutable tree into a Tree. Directories are
// numbered breadth first and their children stored as one sorted run, so
// both inode numbers and listings depend only on the merged content.
// sizeHint, the number of inodes the merge made, is an upper bound of the
// tree's size used to allocate its arrays once. base numbers the nodes'
// StIno.
func freeze(root *inode, sizeHint int, base stInoBase) *Tree {
	t := &Tree{
		nodes:   make([]Node, 0, sizeHint+1),
		dirents: make([]Dirent, 0, sizeHint),
	}
	implicit := base.implicit
	number := func(n *inode) (uint32, bool) {
		if n.ino != 0 {
			return n.ino, false
		}
		n.ino = uint32(len(t.nodes)) + RootIno
		node := nodeOf(n, n.ino)
		switch {
		case n == root:
			node.stino = RootIno
		case n.e == nil:
			node.stino = implicit
			implicit++
		default:
			node.stino = base.of(n)
		}
		t.xattrs = t.xattrs || len(node.Xattrs()) > 0
		t.nodes = append(t.nodes, node)
		return n.ino, true
	}
	number(root)
	t.nodes[0].parent = RootIno
	queue := []*inode{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		dino := d.ino
		names := make([]string, 0, len(d.kids))
		for name := range d.kids {
			names = append(names, name)
		}
		slices.Sort(names)
		start := uint32(len(t.dirents))
		subdirs := uint32(0)
		for _, name := range names {
			k := d.kids[name]
			ino, first := number(k)
			t.dirents = append(t.dirents, Dirent{Name: name, Ino: uint64(ino)})
			kn := &t.nodes[ino-RootIno]
			kn.nlink++
			if k.isDir() {
				subdirs++
				kn.parent = dino
				if first {
					queue = append(queue, k)
				}
			}
		}
		dn := &t.nodes[dino-RootIno]
		dn.kids, dn.nkids = start, uint32(len(names))
		dn.nlink = 2 + subdirs
	}
	t.nodes = slices.Clip(t.nodes)
	t.dirents = slices.Clip(t.dirents)
	return t
}

// stInoBase says where each layer's entries start in the StIno numbering.
type stInoBase struct {
	layer    []uint64 // by layer position
	implicit uint64   // the first number after every entry
}

// stInos numbers layers[low:], the top layer first (see Node.StIno).
func stInos(layers []*Layer, low int) stInoBase {
	b := stInoBase{layer: make([]uint64, len(layers))}
	next := uint64(RootIno + 1)
	for i := len(layers) - 1; i >= low; i-- {
		b.layer[i] = next
		next += uint64(len(layers[i].Entries))
	}
	b.implicit = next
	return b
}

// rawStInos numbers one layer on its own, at position index.
func rawStInos(l *Layer, index int) stInoBase {
	b := stInoBase{layer: make([]uint64, index+1)}
	b.layer[index] = RootIno + 1
	b.implicit = RootIno + 1 + uint64(len(l.Entries))
	return b
}

// of returns the StIno of a node made from a layer entry.
func (b stInoBase) of(n *inode) uint64 { return b.layer[n.layer] + uint64(n.idx) }

// nodeOf converts one merge inode to its frozen form, StIno not set.
func nodeOf(n *inode, ino uint32) Node {
	if n.e == nil {
		return Node{ino: ino, typ: TypeDir, mode: 0755, layer: int32(n.layer)}
	}
	e := n.e
	out := Node{
		ino:   ino,
		typ:   e.Type,
		mode:  e.Mode & 07777,
		uid:   e.UID,
		gid:   e.GID,
		mtime: e.MTime,
		nsec:  e.MTimeNsec,
		layer: int32(n.layer),
	}
	if n.isDir() {
		out.typ = TypeDir
	}
	switch out.typ {
	case TypeRegular:
		out.size, out.offset = e.Size, e.Offset
	case TypeSymlink:
		out.target = e.Linkname
		out.size = int64(len(e.Linkname))
	case TypeChar, TypeBlock:
		out.major, out.minor = e.Devmajor, e.Devminor
	}
	if len(e.Xattrs) > 0 || (out.typ == TypeRegular && len(e.Sparse) > 0) {
		out.extra = &nodeExtra{xattrs: e.Xattrs}
		if out.typ == TypeRegular {
			out.extra.sparse = e.Sparse
		}
	}
	return out
}
