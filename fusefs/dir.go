package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// Directory offsets: 0 is ".", 1 is "..", 2+i is the directory's i-th
// child in name order. An entry's Off is the offset of the next one, so a
// listing resumes exactly where the kernel's buffer filled up.
const firstChildOff = 2

func (f *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.stats.add(opOpenDir)
	n := f.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	if n.Type() != overlay.TypeDir {
		return fuse.ENOTDIR
	}
	if f.noOpenDir {
		// The kernel stops sending OPENDIR and RELEASEDIR and caches
		// listings (FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR is its no-open default).
		return fuse.ENOSYS
	}
	if f.tune.noOpen {
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR
	}
	return fuse.OK
}

func (f *rawFS) ReleaseDir(in *fuse.ReleaseIn) { f.stats.add(opReleaseDir) }

func (f *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.stats.add(opReadDir)
	return f.readDir(in, out, false)
}

func (f *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.stats.add(opReadDirPlus)
	return f.readDir(in, out, true)
}

// readDir fills out from offset in.Offset until the buffer is full. With
// plus, each child also carries its attributes, so `ls -l` and mkfs's
// lstat after scandir cost no LOOKUP.
func (f *rawFS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	dir := f.node(in.NodeId)
	if dir == nil {
		return fuse.ENOENT
	}
	if dir.Type() != overlay.TypeDir {
		return fuse.ENOTDIR
	}
	kids := f.tree.Children(dir)
	if plus && f.prefetch != nil {
		f.prefetch.listedUpTo(dir, in.Offset, len(kids))
	}
	end := uint64(len(kids)) + firstChildOff
	for off := in.Offset; off < end; off++ {
		e := fuse.DirEntry{Off: off + 1, Mode: syscall.S_IFDIR}
		var n *overlay.Node
		switch off {
		case 0:
			e.Name, e.Ino = ".", dir.StIno()
		case 1:
			e.Name, e.Ino = "..", f.tree.Node(dir.Parent()).StIno()
		default:
			d := kids[off-firstChildOff]
			n = f.tree.Node(d.Ino)
			e.Name, e.Ino, e.Mode = d.Name, n.StIno(), mode(n)
		}
		if !plus {
			if !out.AddDirEntry(e) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(e)
		if eo == nil {
			break
		}
		if n != nil { // "." and ".." carry no entry: the kernel skips them
			f.fillEntry(n, eo)
		}
	}
	return fuse.OK
}
