package fusefs

import (
	"log/slog"
	"math"
	"os"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// The kernel's node id of a file is the tree's inode number: both start at
// 1 for the root. These two lines stop the build if that ever changes.
const (
	_ = uint(overlay.RootIno - fuse.FUSE_ROOT_ID)
	_ = uint(fuse.FUSE_ROOT_ID - overlay.RootIno)
)

// forever is the entry, attribute and negative-entry timeout in seconds.
// The tree never changes, so the kernel may keep what it learned for as
// long as it likes; it caps the value itself (MAX_SEC_IN_JIFFIES).
const forever = math.MaxUint32

// LayerFiler is optionally implemented by the content reader given to
// Mount, offering a layer's uncompressed tar stream as a plain file to
// splice reads from. Mount does not splice (see the note above spliceRead
// in file.go); only the benchmarks turn it on (tuning.splice), to measure
// it against copying.
type LayerFiler interface {
	LayerFile(layer int) (*os.File, bool)
}

// rawFS answers FUSE requests straight from an immutable overlay.Tree.
// There is no per-inode state: the kernel's node id is the tree's inode
// number, Forget has nothing to release, and every handler only reads
// the tree, so none takes a lock.
type rawFS struct {
	fuse.RawFileSystem // ENOSYS for whatever is not implemented here

	tree    *overlay.Tree
	content overlay.LayerReader
	log     *slog.Logger
	stats   counters

	// fds are the layers' plain files for splicing, by layer; -1 where a
	// layer has none. nil when splicing is off.
	fds []int

	// xattrs reports whether any node has a visible extended attribute;
	// when none has, xattr requests answer ENOSYS and the kernel stops
	// sending them.
	xattrs bool

	// noOpen and noOpenDir are set when the kernel accepts ENOSYS for
	// OPEN and OPENDIR as "never ask again" (FUSE_NO_OPEN_SUPPORT,
	// FUSE_NO_OPENDIR_SUPPORT). Written by Init before any other request.
	noOpen, noOpenDir bool

	// prefetch pushes file content to the kernel (Options.Prefetch); nil
	// when off.
	prefetch *prefetcher

	// statfs is computed once.
	statfs fuse.StatfsOut

	tune tuning
}

// tuning holds the choices that decide how many requests the kernel
// sends. Mount always uses fastTuning; tests and benchmarks also measure
// naiveTuning, a plain server, to show what each choice saves.
type tuning struct {
	ttl          uint64 // entry, attribute, negative-entry timeout (s)
	noOpen       bool   // ENOSYS for OPEN/OPENDIR where the kernel allows
	readdirPlus  bool
	symlinkCache bool
	enosys       bool // ENOSYS for FLUSH, LSEEK, and xattrs when there are none
	// splice turns on splicing reads from the layers' plain files
	// (LayerFiler). Off in Mount: see the note above spliceRead in file.go.
	splice bool
}

var (
	fastTuning  = tuning{ttl: forever, noOpen: true, readdirPlus: true, symlinkCache: true, enosys: true}
	naiveTuning = tuning{ttl: 1}
)

func newRawFS(tree *overlay.Tree, content overlay.LayerReader, log *slog.Logger, tune tuning) *rawFS {
	f := &rawFS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		tree:          tree,
		content:       content,
		log:           log,
		tune:          tune,
	}
	f.xattrs = scanXattrs(tree, log)
	f.statfs = statfsOf(tree)
	return f
}

func (f *rawFS) String() string { return "ocifs" }

// Init records which no-open features the kernel offers. It runs after
// INIT and before any other request is read.
func (f *rawFS) Init(s *fuse.Server) {
	flags := s.KernelSettings().Flags64()
	f.noOpen = f.tune.noOpen && flags&fuse.CAP_NO_OPEN_SUPPORT != 0
	f.noOpenDir = f.tune.noOpen && flags&fuse.CAP_NO_OPENDIR_SUPPORT != 0
}

// node returns the tree node for a kernel node id, or nil.
func (f *rawFS) node(id uint64) *overlay.Node { return f.tree.Node(id) }

func (f *rawFS) Forget(nodeid, nlookup uint64) { f.stats.add(opForget) }

func (f *rawFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	f.stats.add(opAccess)
	// ENOSYS makes the kernel stop asking and allow access: the image's
	// modes are not enforced against the mounting user (see doc.go).
	return fuse.ENOSYS
}

func (f *rawFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	f.stats.add(opStatx)
	// The kernel falls back to GETATTR, whose answer it caches.
	return fuse.ENOSYS
}

func (f *rawFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	f.stats.add(opStatFs)
	*out = f.statfs
	return fuse.OK
}

// statfsOf reports the tree's size in 4 KiB blocks and its inode count, as
// a full file system: nothing is free on a read-only image.
func statfsOf(t *overlay.Tree) fuse.StatfsOut {
	var blocks uint64
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		blocks += blocks512(t.Node(ino)) / 8
	}
	return fuse.StatfsOut{
		Blocks:  blocks,
		Files:   uint64(t.Len()),
		Bsize:   blockSize,
		Frsize:  blockSize,
		NameLen: 255,
	}
}
