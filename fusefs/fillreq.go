package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// The handlers of a filling mount. Each either hands the request to the
// final file system (its node id translated), or answers it from a
// decided node with rawFS's per-node helpers, or waits for a newer state
// and tries again. The requests that concern no node (FORGET, FLUSH,
// LSEEK, ACCESS, STATX, RELEASE, the refused ones) are rawFS's own,
// inherited: they answer the same before and after.

// Lookup answers at once when the known layers decide the path, and
// otherwise waits for the next state.
func (f *fillFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	for {
		v := f.view.Load()
		if v.final != nil {
			if st := v.final.translate(h); st != fuse.OK {
				return f.count(opLookup, st)
			}
			return v.final.fs.Lookup(cancel, h, name, out)
		}
		dir, ok := f.known(h.NodeId)
		switch {
		case !ok:
			return f.count(opLookup, fuse.Status(syscall.ESTALE))
		case dir.node != nil && dir.node.Type() != overlay.TypeDir:
			return f.count(opLookup, fuse.ENOTDIR)
		}
		p := name
		if dir.path != "" {
			p = dir.path + "/" + name
		}
		if n, ok := v.get(p); ok {
			if id, ok := f.register(p, n); ok {
				f.entry(id, n, out)
				return f.count(opLookup, fuse.OK)
			}
			continue // the tree arrived meanwhile: its ids are the tree's
		}
		f.lookups.Add(1)
		st := f.wait(cancel, v, "path", "/"+p)
		f.lookups.Add(-1)
		if st != fuse.OK {
			return f.count(opLookup, st)
		}
	}
}

// entry answers a LOOKUP with a decided node. A directory's link count is
// not final (it counts subdirectories the lower layers may add), so its
// attributes expire at once and stat asks again (GetAttr). It says 1, the
// usual "not counted", rather than the Partial's 0.
func (f *fillFS) entry(id uint64, n *overlay.Node, out *fuse.EntryOut) {
	f.fillEntry(n, out)
	out.NodeId = id
	unfinishedDir(n, &out.Attr, &out.AttrValid)
}

// unfinishedDir marks a directory's attributes as not final while
// filling: link count 1, expiring at once.
func unfinishedDir(n *overlay.Node, a *fuse.Attr, valid *uint64) {
	if n.Type() == overlay.TypeDir {
		*valid = 0
		a.Nlink = 1
	}
}

// GetAttr answers at once for decided nodes. A directory's (and the
// root's) attributes expire at once, with link count 1: the lower layers
// may add subdirectories, and the root's other attributes are
// overlay.UnknownRoot's until the layer with the root's entry is known.
func (f *fillFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	v := f.view.Load()
	if v.final != nil {
		if st := v.final.translate(&in.InHeader); st != fuse.OK {
			return f.count(opGetAttr, st)
		}
		return v.final.fs.GetAttr(cancel, in, out)
	}
	k, ok := f.known(in.NodeId)
	if !ok {
		return f.count(opGetAttr, fuse.Status(syscall.ESTALE))
	}
	f.count(opGetAttr, fuse.OK)
	n := k.node
	if n == nil { // the root
		var ok bool
		if n, ok = v.root(); !ok {
			n = overlay.UnknownRoot()
		}
	}
	f.getAttr(n, out)
	unfinishedDir(n, &out.Attr, &out.AttrValid)
	return fuse.OK
}

func (f *fillFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	fin, n, st := f.node(cancel, false, h)
	if fin != nil && st == fuse.OK {
		return fin.Readlink(cancel, h)
	}
	if f.count(opReadlink, st) != fuse.OK {
		return nil, st
	}
	return readlink(n)
}

func (f *fillFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fin, _, st := f.node(cancel, false, &in.InHeader)
	if fin != nil && st == fuse.OK {
		return fin.Open(cancel, in, out)
	}
	if f.count(opOpen, st) != fuse.OK {
		return st
	}
	return f.open(in, out)
}

func (f *fillFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fin, n, st := f.node(cancel, false, &in.InHeader)
	if fin != nil && st == fuse.OK {
		return fin.Read(cancel, in, buf)
	}
	if f.count(opRead, st) != fuse.OK {
		return nil, st
	}
	return f.read(n, in, buf)
}

func (f *fillFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	fin, n, st := f.node(cancel, true, h)
	if fin != nil && st == fuse.OK {
		return fin.ListXAttr(cancel, h, dest)
	}
	if f.count(opListXAttr, st) != fuse.OK {
		return 0, st
	}
	return listXAttr(n, dest)
}

func (f *fillFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	fin, n, st := f.node(cancel, true, h)
	if fin != nil && st == fuse.OK {
		return fin.GetXAttr(cancel, h, name, dest)
	}
	if f.count(opGetXAttr, st) != fuse.OK {
		return 0, st
	}
	return getXAttr(n, name, dest)
}

func (f *fillFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fin, st := f.complete(cancel, &in.InHeader)
	if st != fuse.OK {
		return f.count(opOpenDir, st)
	}
	return fin.OpenDir(cancel, in, out)
}

func (f *fillFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fin, st := f.complete(cancel, &in.InHeader)
	if st != fuse.OK {
		return f.count(opReadDir, st)
	}
	return fin.ReadDir(cancel, in, out)
}

func (f *fillFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fin, st := f.complete(cancel, &in.InHeader)
	if st != fuse.OK {
		return f.count(opReadDirPlus, st)
	}
	return fin.ReadDirPlus(cancel, in, out)
}

func (f *fillFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	fin, st := f.complete(cancel, h)
	if st != fuse.OK {
		return f.count(opStatFs, st)
	}
	return fin.StatFs(cancel, h, out)
}

// node resolves a request on a node: to the final file system once there
// is one (h's node id then translated), else to its decided node. A
// directory's node (and the root's, once a known layer has its entry)
// is given only with dirs set, for requests it answers finally (xattrs);
// else directories and the root wait for the final tree.
func (f *fillFS) node(cancel <-chan struct{}, dirs bool, h *fuse.InHeader) (*rawFS, *overlay.Node, fuse.Status) {
	for {
		v := f.view.Load()
		if v.final != nil {
			return v.final.fs, nil, v.final.translate(h)
		}
		k, ok := f.known(h.NodeId)
		if !ok {
			return nil, nil, fuse.Status(syscall.ESTALE)
		}
		switch {
		case k.node != nil && (dirs || k.node.Type() != overlay.TypeDir):
			return nil, k.node, fuse.OK
		case k.node == nil && dirs:
			if r, ok := v.root(); ok {
				return nil, r, fuse.OK
			}
		}
		if st := f.wait(cancel, v, "path", "/"+k.path); st != fuse.OK {
			return nil, nil, st
		}
	}
}

// complete waits for the final file system and translates h's node id.
func (f *fillFS) complete(cancel <-chan struct{}, h *fuse.InHeader) (*rawFS, fuse.Status) {
	for {
		v := f.view.Load()
		if v.final != nil {
			return v.final.fs, v.final.translate(h)
		}
		if st := f.wait(cancel, v, "node", h.NodeId); st != fuse.OK {
			return nil, st
		}
	}
}

// wait waits for a newer view than v. It answers EIO when there will be
// none (the fill failed), EINTR when the request is interrupted (its
// caller got a signal) or the mount goes away.
func (f *fillFS) wait(cancel <-chan struct{}, v *fillView, what ...any) fuse.Status {
	if v.err != nil {
		return fuse.EIO
	}
	f.log.Debug("waiting for more layers", what...)
	select {
	case <-v.next:
		return fuse.OK
	case <-cancel:
		return fuse.EINTR
	}
}

// root returns the root's node when the known layers decide it.
func (v *fillView) root() (*overlay.Node, bool) {
	if v.partial == nil {
		return nil, false
	}
	return v.partial.Root()
}

func (v *fillView) get(p string) (*overlay.Node, bool) {
	if v.partial == nil {
		return nil, false
	}
	return v.partial.Get(p)
}

// known returns the path and decided node that id was handed out for;
// the root has no node.
func (f *fillFS) known(id uint64) (fillNode, bool) {
	if id == fuse.FUSE_ROOT_ID {
		return fillNode{}, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id < fillBase || id-fillBase >= uint64(len(f.nodes)) {
		return fillNode{}, false
	}
	return f.nodes[id-fillBase], true
}

// register returns the node id of path p, handing out the next one the
// first time. It reports false once the tree is complete: ids handed out
// from then on are the tree's.
func (f *fillFS) register(p string, n *overlay.Node) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.view.Load().final != nil {
		return 0, false
	}
	if id, ok := f.ids[p]; ok {
		return id, true
	}
	id := fillBase + uint64(len(f.nodes))
	f.ids[p] = id
	f.nodes = append(f.nodes, fillNode{p, n})
	return id, true
}

// count counts a request answered while filling.
func (f *fillFS) count(o op, st fuse.Status) fuse.Status {
	f.stats.add(o)
	return st
}
