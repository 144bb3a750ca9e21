package fusefs

import (
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

func (f *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.stats.add(opOpen)
	if f.node(in.NodeId) == nil {
		return fuse.ENOENT
	}
	return f.open(in, out)
}

func (f *rawFS) open(in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY || in.Flags&syscall.O_TRUNC != 0 {
		return fuse.EROFS
	}
	if f.noOpen {
		// The kernel stops sending OPEN, RELEASE (and, after the first
		// ENOSYS, FLUSH) and keeps file pages cached across opens:
		// FOPEN_KEEP_CACHE is its no-open default.
		return fuse.ENOSYS
	}
	if f.tune.noOpen {
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE // a kernel without no-open support
	}
	return fuse.OK
}

func (f *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) { f.stats.add(opRelease) }

func (f *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	f.stats.add(opFlush)
	if !f.tune.enosys {
		return fuse.OK
	}
	return fuse.ENOSYS // nothing to flush; the kernel stops sending FLUSH
}

// Lseek answers ENOSYS once; the kernel then handles SEEK_DATA/SEEK_HOLE
// itself (all data, a hole at EOF). mkfs.ext4 -d skips zero blocks on its
// own, so sparse files still come out sparse.
func (f *rawFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	f.stats.add(opLseek)
	if f.tune.enosys {
		return fuse.ENOSYS
	}
	n := f.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	switch off := int64(in.Offset); {
	case in.Whence != unix.SEEK_DATA && in.Whence != unix.SEEK_HOLE:
		return fuse.EINVAL
	case off >= n.Size():
		return fuse.Status(unix.ENXIO)
	case in.Whence == unix.SEEK_DATA:
		out.Offset = uint64(off)
	default:
		out.Offset = uint64(n.Size())
	}
	return fuse.OK
}

func (f *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f.stats.add(opRead)
	n := f.node(in.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	return f.read(n, in, buf)
}

func (f *rawFS) read(n *overlay.Node, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if n.Type() != overlay.TypeRegular {
		return nil, fuse.EINVAL
	}
	if f.prefetch != nil {
		f.prefetch.sawRead(n.Ino())
	}
	off := int64(in.Offset)
	want := min(int64(in.Size), int64(len(buf)), max(n.Size()-off, 0))
	if want == 0 {
		return f.result(buf[:0]), fuse.OK
	}
	if rr, ok := f.spliceRead(n, off, want); ok {
		f.stats.readBytes.Add(uint64(want))
		return rr, fuse.OK
	}
	if f.content == nil {
		return nil, fuse.EIO
	}
	k, err := n.ReadAt(f.content, buf[:want], off)
	if err != nil && err != io.EOF {
		f.log.Warn("reading file content", "ino", n.Ino(), "layer", n.Layer(), "offset", off, "err", err)
		return nil, fuse.EIO
	}
	f.stats.readBytes.Add(uint64(k))
	return f.result(buf[:k]), fuse.OK
}

// Splicing is off in Mount (tuning.splice) because go-fuse 2.12 loses
// data with it: it fills its pipe with one splice(2) from the layer file
// and takes a short count for the end of the file, so it answers a READ
// with fewer bytes than the file has there. splice(2) from a file returns
// short, not at its end, when the next page of the file is not cached yet
// (seen: a READ of 108,456 bytes answered with 107,520, ending exactly on
// a page boundary of the layer file, after the caches were dropped). The
// kernel then takes the short answer as the end of the file and shrinks
// its size ("tar: File shrank by 936 bytes"). Copied reads (pread into
// the request's buffer, retried until full, then one writev) cost two
// syscalls against five and are as fast (BenchmarkFileRead), so nothing
// is lost.

// spliceRead returns a result the server splices from the layer's file,
// when splicing is on and the file's bytes are one run in that file.
func (f *rawFS) spliceRead(n *overlay.Node, off, want int64) (fuse.ReadResult, bool) {
	l := n.Layer()
	if f.fds == nil || l < 0 || l >= len(f.fds) || f.fds[l] < 0 || n.Sparse() != nil {
		return nil, false
	}
	return fuse.ReadResultFd(uintptr(f.fds[l]), n.Offset()+off, int(want)), true
}

// result wraps bytes read into the server's buffer. When the server may
// splice (some layers are plain files), a byte result must say it is a
// vector (Slices), or the server first tries to splice it and fails, at
// three syscalls a read; when it never splices, the plain result avoids
// the slice header the vector path allocates.
func (f *rawFS) result(b []byte) fuse.ReadResult {
	if f.fds != nil {
		r := vecResults.Get().(*vecResult)
		r.data = b
		return r
	}
	r := readResults.Get().(*readResult)
	r.data = b
	return r
}

// readResult is fuse.ReadResultData without an allocation per read: the
// bytes are in the buffer the server passed to Read, and the result goes
// back to a pool once the server has sent it.
type readResult struct{ data []byte }

var readResults = sync.Pool{New: func() any { return new(readResult) }}

func (r *readResult) Bytes(buf []byte) ([]byte, fuse.Status) { return r.data, fuse.OK }
func (r *readResult) Size() int                              { return len(r.data) }
func (r *readResult) Done() {
	r.data = nil
	readResults.Put(r)
}

// vecResult is readResult as a one-element vector.
type vecResult struct {
	data []byte
	vec  [1][]byte
}

var vecResults = sync.Pool{New: func() any { return new(vecResult) }}

func (r *vecResult) Bytes(buf []byte) ([]byte, fuse.Status) { return r.data, fuse.OK }
func (r *vecResult) Size() int                              { return len(r.data) }
func (r *vecResult) Slices() ([][]byte, fuse.Status) {
	r.vec[0] = r.data
	return r.vec[:], fuse.OK
}
func (r *vecResult) Done() {
	r.data, r.vec[0] = nil, nil
	vecResults.Put(r)
}
