package fusefs

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// FillState is one state of a filling image: one whose layers are still
// arriving, top layer first.
type FillState struct {
	// Partial is what the layers known so far decide; nil when nothing
	// is known yet. A state without one keeps the previous state's.
	Partial *overlay.Partial
	// Tree is the complete tree, once every layer is in; Partial is
	// then ignored.
	Tree *overlay.Tree
	// Err is set when the fill failed: requests that wait for more
	// layers answer EIO, decided ones keep working. It is for good when
	// State returns no channel with it; else a newer state (a retry)
	// may follow, and requests wait again.
	Err error
}

// Filler is the source of a filling image's states.
type Filler interface {
	// State returns the current state and a channel closed when a newer
	// one exists (nil once the state is final: Tree set, or Err for
	// good).
	State() (FillState, <-chan struct{})
}

// fillBase is the first kernel node id handed out while an image fills,
// far above any tree's inode numbers (a Tree numbers them in 32 bits).
const fillBase = 1 << 48

// fillFS serves a filling image (doc.go, "Filling"). It embeds a rawFS
// without a tree for the answers that depend on no node, or on one node
// (its per-node helpers); those count in that rawFS's counters. Once the
// tree is complete it hands every request on a node to the tree's own
// rawFS.
type fillFS struct {
	*rawFS
	src Filler

	// view is the latest state; replaced only under mu.
	view atomic.Pointer[fillView]
	// lookups counts the LOOKUPs waiting for more layers.
	lookups atomic.Int64

	mu sync.Mutex // guards ids, nodes, and replacing view
	// ids maps a decided path to the node id it was given;
	// nodes[id-fillBase] is that id's path and node.
	ids   map[string]uint64
	nodes []fillNode
}

type fillNode struct {
	path string
	node *overlay.Node
}

// fillView is one state as the handlers see it: final once the tree is
// complete; else next is set unless err is for good.
type fillView struct {
	partial *overlay.Partial
	next    chan struct{} // closed when a newer view replaces this one
	err     error
	final   *finalFS
}

// finalFS is the complete tree's file system, with the tree's node ids
// for the ids handed out while filling.
type finalFS struct {
	fs    *rawFS
	trans []uint64 // by id-fillBase; 0 where the tree lacks the path
}

var _ fuse.RawFileSystem = (*fillFS)(nil)

// MountFilling serves the image src fills at dir, like Mount, but returns
// at once: requests the layers known so far decide are answered at once,
// the others wait for the layers they need (doc.go, "Filling"). content
// must read every layer that a decided node or the final tree names.
// Options.Prefetch takes effect once the tree is complete.
func MountFilling(dir string, src Filler, content overlay.LayerReader, opts Options) (*Server, error) {
	if src == nil {
		return nil, errors.New("mounting: no image")
	}
	s, direct, logger, err := newServer(dir, opts)
	if err != nil {
		return nil, err
	}
	f := &fillFS{
		rawFS: &rawFS{
			RawFileSystem: fuse.NewDefaultRawFileSystem(),
			content:       content,
			log:           logger,
			tune:          fastTuning,
			xattrs:        true, // not known yet: the kernel must keep asking
		},
		src: src,
		ids: map[string]uint64{},
	}
	// Seed the view with what src knows now, so a request that comes
	// as soon as the mount is served need not wait for follow to start.
	first := &fillView{next: make(chan struct{})}
	if st, _ := src.State(); st.Tree == nil && st.Err == nil {
		first.partial = st.Partial
	}
	f.view.Store(first)
	s.fill = f
	err = s.serve(f, mountOptions(opts, f.rawFS, direct, logger), direct, opts.SelfAccess, func() {
		startFollow(func() { f.follow(s.srv, s.done, opts.Prefetch) })
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// startFollow starts MountFilling's follow goroutine; tests delay it.
var startFollow = func(follow func()) { go follow() }

// follow publishes src's states until the last one, or until stop.
func (f *fillFS) follow(srv *fuse.Server, stop <-chan struct{}, prefetch bool) {
	for {
		st, changed := f.src.State()
		switch {
		case st.Tree != nil:
			f.publish(&fillView{final: f.finish(st.Tree, srv, stop, prefetch)})
			return
		case st.Err != nil:
			f.log.Warn("filling the image", "err", st.Err)
			v := &fillView{partial: st.Partial, err: st.Err}
			if changed == nil { // for good
				f.publish(v)
				return
			}
			v.next = make(chan struct{})
			f.publish(v)
		default:
			f.publish(&fillView{partial: st.Partial, next: make(chan struct{})})
			f.log.Debug("more layers known")
		}
		select {
		case <-changed:
		case <-stop:
			return
		}
	}
}

// publish replaces the view and wakes the requests waiting on the old one.
func (f *fillFS) publish(v *fillView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.view.Load()
	if v.partial == nil && v.final == nil {
		v.partial = old.partial
	}
	if v.final != nil {
		v.final.trans = f.translations(v.final.fs.tree)
	}
	f.view.Store(v)
	if old.next != nil {
		close(old.next)
	}
}

// finish builds the complete tree's file system, as Mount would.
func (f *fillFS) finish(tree *overlay.Tree, srv *fuse.Server, stop <-chan struct{}, prefetch bool) *finalFS {
	fin := newRawFS(tree, f.content, f.log, f.tune)
	fin.Init(srv)
	if prefetch && f.content != nil && f.tune.readdirPlus {
		fin.prefetch = newPrefetcher(fin)
		fin.prefetch.srv = srv
		go fin.prefetch.run(stop)
	}
	f.log.Debug("image complete", "inodes", tree.Len())
	return &finalFS{fs: fin}
}

// translations maps the ids handed out so far to tree's. Called with mu
// held, so no id is added after it.
func (f *fillFS) translations(tree *overlay.Tree) []uint64 {
	trans := make([]uint64, len(f.nodes))
	for i, n := range f.nodes {
		if t := tree.Get(n.path); t != nil {
			trans[i] = t.Ino()
		} else {
			f.log.Error("a path decided while filling is missing from the complete tree", "path", "/"+n.path)
		}
	}
	return trans
}

// translate rewrites a request's node id to the tree's. The root is 1 in
// both.
func (d *finalFS) translate(h *fuse.InHeader) fuse.Status {
	if h.NodeId < fillBase {
		return fuse.OK
	}
	i := h.NodeId - fillBase
	if i >= uint64(len(d.trans)) || d.trans[i] == 0 {
		return fuse.Status(syscall.ESTALE)
	}
	h.NodeId = d.trans[i]
	return fuse.OK
}

// counts adds up the requests answered while filling and after.
func (f *fillFS) counts() Stats {
	if fin := f.view.Load().final; fin != nil {
		return sumCounters(&f.rawFS.stats, &fin.fs.stats)
	}
	return f.rawFS.stats.snapshot()
}
