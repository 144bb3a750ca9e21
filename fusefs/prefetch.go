package fusefs

import (
	"errors"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// Prefetching (Options.Prefetch) hands the kernel the content of a
// directory's small files as soon as the kernel knows their inodes, with
// FUSE_NOTIFY_STORE, so that a reader that reads every file it lists
// (mkfs.ext4 -d, tar) finds them in the page cache and sends no READ.
//
// The kernel creates the inodes of a READDIRPLUS reply while it parses
// it, in the lister's context, after the reply was written; a store for
// an inode it does not know yet fails with ENOENT. So a store is only
// sent for entries the kernel has provably parsed: those before the
// offset of the next READDIRPLUS call on the same directory (every
// listing ends with one more call, which returns nothing). One goroutine
// pushes, in listing order, which is the order mkfs.ext4 -d and tar read
// in; a file the reader asked for before its turn (a READ arrived) is
// skipped. Handlers never block on it: a job that does not fit the queue
// is dropped and its files are read the ordinary way.

// prefetchMaxFile is the largest file pushed. Bigger files arrive in
// 128 KiB READs anyway (the kernel's readahead), where the round trip is
// a small part of the cost; pushing them only fills memory sooner.
const prefetchMaxFile = 1 << 20

// prefetchQueue is how many directory ranges may wait for the pusher.
const prefetchQueue = 1024

// pushJob is a range of a directory's children, by index, that the kernel
// has parsed.
type pushJob struct {
	dir      *overlay.Node
	from, to int
}

// prefetcher is the pushing goroutine's state. The bit sets are indexed
// by inode number; they and listed are written by handlers without locks.
type prefetcher struct {
	fs     *rawFS
	srv    *fuse.Server
	jobs   chan pushJob
	listed []atomic.Uint32 // per directory: children already queued
	read   []atomic.Uint32 // bit set: files a READ has asked for
	pushed []atomic.Uint32 // bit set: files pushed or being pushed
	buf    []byte
}

func newPrefetcher(f *rawFS) *prefetcher {
	n := f.tree.Len() + int(overlay.RootIno)
	return &prefetcher{
		fs:     f,
		jobs:   make(chan pushJob, prefetchQueue),
		listed: make([]atomic.Uint32, n),
		read:   make([]atomic.Uint32, n/32+1),
		pushed: make([]atomic.Uint32, n/32+1),
		buf:    make([]byte, prefetchMaxFile),
	}
}

func testBit(s []atomic.Uint32, i uint64) bool { return s[i/32].Load()&(1<<(i%32)) != 0 }

// setBit sets bit i and reports whether it was clear.
func setBit(s []atomic.Uint32, i uint64) bool {
	m := uint32(1) << (i % 32)
	return s[i/32].Or(m)&m == 0
}

// listedUpTo is called for a READDIRPLUS of dir at offset off: the kernel
// has parsed the children before it.
func (p *prefetcher) listedUpTo(dir *overlay.Node, off uint64, nkids int) {
	if off <= firstChildOff {
		return
	}
	to := int(min(off-firstChildOff, uint64(nkids)))
	l := &p.listed[dir.Ino()]
	from := int(l.Load())
	if to <= from || !l.CompareAndSwap(uint32(from), uint32(to)) {
		return
	}
	select {
	case p.jobs <- pushJob{dir, from, to}:
	default:
		p.fs.stats.prefetchDropped.Add(1)
	}
}

// sawRead records that the kernel asked for a file's bytes itself. It
// runs on every READ: the load spares a big file's later READs an atomic
// write to a word the other handlers share.
func (p *prefetcher) sawRead(ino uint64) {
	if !testBit(p.read, ino) {
		setBit(p.read, ino)
	}
}

// run pushes until stop is closed.
func (p *prefetcher) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case j := <-p.jobs:
			kids := p.fs.tree.Children(j.dir)
			for _, d := range kids[j.from:j.to] {
				if !p.push(p.fs.tree.Node(d.Ino)) {
					break
				}
			}
		}
	}
}

// push stores one file's content in the kernel's page cache. It returns
// false when pushing should stop for this job (the mount is going away).
func (p *prefetcher) push(n *overlay.Node) bool {
	ino := n.Ino()
	if n.Type() != overlay.TypeRegular || n.Size() == 0 || n.Size() > prefetchMaxFile ||
		n.Sparse() != nil || testBit(p.read, ino) || !setBit(p.pushed, ino) {
		return true
	}
	b := p.buf[:n.Size()]
	k, err := n.ReadAt(p.fs.content, b, 0)
	if err != nil && !errors.Is(err, io.EOF) || k != len(b) {
		p.fs.log.Debug("prefetching file content", "ino", ino, "err", err)
		return true // the READ that follows reports it
	}
	switch st := p.srv.InodeNotifyStoreCache(ino, 0, b); st {
	case fuse.OK:
		p.fs.stats.prefetched.Add(1)
		p.fs.stats.prefetchedBytes.Add(uint64(len(b)))
	case fuse.Status(syscall.ENOENT): // forgotten meanwhile
	case fuse.Status(syscall.ENODEV), fuse.Status(syscall.EBADF):
		return false
	default:
		p.fs.log.Debug("prefetching file content", "ino", ino, "status", st)
	}
	return true
}
