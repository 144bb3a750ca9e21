package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

const (
	// blockSize is st_blksize, and the unit st_blocks is rounded up to.
	blockSize = 4096
	// dirSize is a directory's st_size, as a fresh ext4 directory has.
	dirSize = 4096
)

// typeBits maps a node type to its S_IF* bits.
var typeBits = [...]uint32{
	overlay.TypeRegular: syscall.S_IFREG,
	overlay.TypeDir:     syscall.S_IFDIR,
	overlay.TypeSymlink: syscall.S_IFLNK,
	overlay.TypeChar:    syscall.S_IFCHR,
	overlay.TypeBlock:   syscall.S_IFBLK,
	overlay.TypeFifo:    syscall.S_IFIFO,
}

// mode returns st_mode: type bits, permissions and setuid/setgid/sticky.
func mode(n *overlay.Node) uint32 {
	t := n.Type()
	if int(t) >= len(typeBits) {
		return n.Mode()
	}
	return typeBits[t] | n.Mode()
}

// size returns st_size: the content length of a file, the target length
// of a symlink (mkfs.ext4 -d relies on it), dirSize for a directory.
func size(n *overlay.Node) uint64 {
	switch n.Type() {
	case overlay.TypeRegular, overlay.TypeSymlink:
		return uint64(n.Size())
	case overlay.TypeDir:
		return dirSize
	}
	return 0
}

// blocks512 returns st_blocks: the 512-byte units a file's data would take
// in 4 KiB blocks (only data extents for a sparse file), dirSize's worth
// for a directory, 0 for other types.
func blocks512(n *overlay.Node) uint64 {
	var b uint64
	switch n.Type() {
	case overlay.TypeRegular:
		if sp := n.Sparse(); sp != nil {
			for _, x := range sp {
				b += roundBlocks(uint64(x.Len))
			}
			return b
		}
		return roundBlocks(uint64(n.Size()))
	case overlay.TypeDir:
		return roundBlocks(dirSize)
	}
	return 0
}

func roundBlocks(n uint64) uint64 { return (n + blockSize - 1) / blockSize * (blockSize / 512) }

// fillAttr writes n's attributes; atime and ctime are the mtime. st_ino is
// StIno: Ino is the kernel's node id.
func fillAttr(n *overlay.Node, a *fuse.Attr) {
	sec, nsec := n.MTimeUnix()
	*a = fuse.Attr{
		Ino:       n.StIno(),
		Size:      size(n),
		Blocks:    blocks512(n),
		Atime:     uint64(sec),
		Mtime:     uint64(sec),
		Ctime:     uint64(sec),
		Atimensec: nsec,
		Mtimensec: nsec,
		Ctimensec: nsec,
		Mode:      mode(n),
		Nlink:     n.Nlink(),
		Owner:     fuse.Owner{Uid: n.UID(), Gid: n.GID()},
		Blksize:   blockSize,
	}
	if t := n.Type(); t == overlay.TypeChar || t == overlay.TypeBlock {
		// The protocol carries the kernel's 32-bit encoding (12-bit major,
		// 20-bit minor), which is what Mkdev's low half is.
		a.Rdev = uint32(unix.Mkdev(n.Dev()))
	}
}

func (f *rawFS) fillEntry(n *overlay.Node, out *fuse.EntryOut) {
	out.NodeId = n.Ino()
	out.Generation = 0
	out.EntryValid, out.EntryValidNsec = f.tune.ttl, 0
	out.AttrValid, out.AttrValidNsec = f.tune.ttl, 0
	fillAttr(n, &out.Attr)
}

func (f *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.stats.add(opLookup)
	dir := f.node(h.NodeId)
	if dir == nil {
		return fuse.ENOENT
	}
	if dir.Type() != overlay.TypeDir {
		return fuse.ENOTDIR
	}
	n := f.tree.Lookup(dir, name)
	if n == nil {
		// A negative entry with a timeout: the kernel remembers that the
		// name does not exist and does not ask again.
		*out = fuse.EntryOut{EntryValid: f.tune.ttl}
		return fuse.OK
	}
	f.fillEntry(n, out)
	return fuse.OK
}

func (f *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	f.stats.add(opGetAttr)
	n := f.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return f.getAttr(n, out)
}

func (f *rawFS) getAttr(n *overlay.Node, out *fuse.AttrOut) fuse.Status {
	out.AttrValid, out.AttrValidNsec = f.tune.ttl, 0
	fillAttr(n, &out.Attr)
	return fuse.OK
}

func (f *rawFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	f.stats.add(opReadlink)
	n := f.node(h.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	return readlink(n)
}

func readlink(n *overlay.Node) ([]byte, fuse.Status) {
	if n.Type() != overlay.TypeSymlink {
		return nil, fuse.EINVAL
	}
	// Symlink caching is on, so this runs once per link.
	return []byte(n.Target()), fuse.OK
}
