package fsload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

type op int

const (
	opLookup op = iota
	opMiss
	opReadlink
	opXattr
	opRead
	opReaddir
	opWalkDir
	opChurn
	nOps
)

var opNames = [nOps]string{"lookup", "miss", "readlink", "xattr", "read", "readdir", "walk-dir", "churn"}

// readerMix is how often a reader picks each operation, in parts.
var readerMix = []struct {
	op     op
	weight int
}{{opLookup, 25}, {opMiss, 15}, {opReadlink, 10}, {opXattr, 10}, {opRead, 30}, {opReaddir, 10}}

// maxRead bounds one pread (two kernel read requests of 128 KiB).
const maxRead = 256 << 10

// busy is what a worker is doing, for the watchdog.
type busy struct {
	since atomic.Int64 // unix ns when the current operation started; 0 when idle
	what  atomic.Pointer[string]
}

func (b *busy) set(what string) {
	b.what.Store(&what)
	b.since.Store(time.Now().UnixNano())
}

func (b *busy) clear() { b.since.Store(0) }

// doing returns the current operation and how long it has run, if any.
func (b *busy) doing() (string, time.Duration, bool) {
	since := b.since.Load()
	if since == 0 {
		return "", 0, false
	}
	return *b.what.Load(), time.Since(time.Unix(0, since)), true
}

// worker is one reader or walker goroutine.
type worker struct {
	id        int
	r         *rand.Rand
	exp       *Expect
	root      string
	direct    bool
	st        *state
	busy      busy
	buf, want []byte // buf is 4 KiB aligned, for O_DIRECT
}

func newWorker(id int, seed uint64, exp *Expect, cfg *Config, st *state) *worker {
	return &worker{
		id: id, r: rand.New(rand.NewPCG(seed, uint64(id))), exp: exp, root: cfg.Root,
		direct: cfg.Direct, st: st, buf: alignedBuffer(maxRead), want: make([]byte, maxRead),
	}
}

func alignedBuffer(n int) []byte {
	b := make([]byte, n+4096)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[off : off+n : off+n]
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

func (w *worker) full(p string) string { return filepath.Join(w.root, p) }

// timed runs one operation, counting it and its latency.
func (w *worker) timed(o op, what string, fn func() error) {
	w.busy.set(what)
	start := time.Now()
	err := fn()
	w.busy.clear()
	lat := time.Since(start)
	w.st.count(o, lat)
	if err == nil && lat > w.st.slow {
		err = fmt.Errorf("%s took %v", what, lat.Round(time.Millisecond))
	}
	if err != nil {
		w.st.fail(fmt.Errorf("%s: %w", opNames[o], err))
	}
}

// step runs one randomly chosen reader operation.
func (w *worker) step() {
	n := w.r.IntN(100)
	for _, m := range readerMix {
		if n -= m.weight; n < 0 {
			w.run(m.op)
			return
		}
	}
}

func (w *worker) run(o op) {
	e := w.exp
	switch {
	case o == opReadlink && len(e.links) > 0:
		p := pick(w.r, e.links)
		w.timed(o, "readlink "+p, func() error { return w.readlink(p) })
	case o == opXattr && len(e.xattrs) > 0:
		p := pick(w.r, e.xattrs)
		w.timed(o, "xattrs "+p, func() error { return e.checkXattrs(w.root, p) })
	case o == opRead && len(e.files) > 0:
		p := pick(w.r, e.files)
		w.timed(o, "read "+p, func() error { return w.read(p) })
	case o == opReaddir:
		p := pick(w.r, e.dirs)
		w.timed(o, "readdir "+show(p), func() error { return w.readdir(p) })
	case o == opMiss:
		p, want := w.missing()
		w.timed(o, "lstat "+p, func() error { return w.lstatMissing(p, want) })
	default:
		p := pick(w.r, e.paths)
		w.timed(opLookup, "lstat "+p, func() error { return w.lstat(p) })
	}
}

func (w *worker) lstat(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(w.full(p), &st); err != nil {
		return fmt.Errorf("lstat %s: %w", p, err)
	}
	return checkStat(p, w.exp.node(p), &st)
}

// missing returns a path that does not exist and the errors lstat may
// give for it.
func (w *worker) missing() (string, []error) {
	e := w.exp
	fresh := fmt.Sprintf("missing-%d-%x", w.id, w.r.Uint64())
	switch w.r.IntN(4) {
	case 0:
		return path.Join(pick(w.r, e.dirs), fresh, "x"), []error{unix.ENOENT}
	case 1:
		if len(e.nonDirs) > 0 {
			return path.Join(pick(w.r, e.nonDirs), "x"), []error{unix.ENOTDIR}
		}
	case 2:
		long := fresh + strings.Repeat("n", 300-len(fresh))
		return path.Join(pick(w.r, e.dirs), long), []error{unix.ENOENT, unix.ENAMETOOLONG}
	}
	return path.Join(pick(w.r, e.dirs), fresh), []error{unix.ENOENT}
}

func (w *worker) lstatMissing(p string, want []error) error {
	var st unix.Stat_t
	err := unix.Lstat(w.full(p), &st)
	for _, e := range want {
		if errors.Is(err, e) {
			return nil
		}
	}
	if err == nil {
		return fmt.Errorf("lstat %s: exists, want one of %v", p, want)
	}
	return fmt.Errorf("lstat %s: %w, want one of %v", p, err, want)
}

func (w *worker) readlink(p string) error {
	n, err := unix.Readlink(w.full(p), w.buf)
	if err != nil {
		return fmt.Errorf("readlink %s: %w", p, err)
	}
	if got, want := string(w.buf[:n]), w.exp.node(p).Target(); got != want {
		return fmt.Errorf("readlink %s: %q, want %q", p, got, want)
	}
	return nil
}

func (w *worker) readdir(p string) error {
	ents, err := os.ReadDir(w.full(p))
	if err != nil {
		return fmt.Errorf("readdir %s: %w", show(p), err)
	}
	return w.exp.checkListing(p, ents)
}

// read opens p (with O_DIRECT, after dropping its cached pages, or
// plainly), checks fstat, and preads a random range.
func (w *worker) read(p string) error {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	how := w.r.IntN(4)
	if how == 0 && w.direct {
		flags |= unix.O_DIRECT
	}
	fd, err := unix.Open(w.full(p), flags, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat %s: %w", p, err)
	}
	if err := checkStat(p, w.exp.node(p), &st); err != nil {
		return err
	}
	if how == 1 {
		if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("fadvise %s: %w", p, err)
		}
	}
	off, n := w.span(st.Size)
	got, err := preadFull(fd, w.buf[:n], off)
	if err != nil {
		return fmt.Errorf("pread %s at %d of %d bytes: %w", p, off, n, err)
	}
	return w.exp.checkContent(p, w.buf[:got], n, off, w.want)
}

// span picks an offset (the start, inside, across or past EOF) and a
// length; O_DIRECT needs neither aligned for FUSE.
func (w *worker) span(size int64) (int64, int) {
	n := 1 + w.r.IntN(4096)
	if w.r.IntN(3) == 0 {
		n = 1 + w.r.IntN(maxRead)
	}
	switch k := w.r.IntN(8); {
	case k < 2 || size == 0:
		return 0, n
	case k == 6:
		return max(0, size-int64(w.r.IntN(4096))), n
	case k == 7:
		return size + int64(w.r.IntN(4096)), n
	}
	return w.r.Int64N(size), n
}

// preadFull reads until p is full or EOF.
func preadFull(fd int, p []byte, off int64) (int, error) {
	got := 0
	for got < len(p) {
		n, err := unix.Pread(fd, p[got:], off+int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			break
		}
		got += n
	}
	return got, nil
}

// walk lists every directory from the root and lstats every entry.
func (w *worker) walk(p string, stop *atomic.Bool) {
	if stop.Load() {
		return
	}
	var ents []os.DirEntry
	w.timed(opWalkDir, "readdir "+show(p), func() error {
		var err error
		if ents, err = os.ReadDir(w.full(p)); err != nil {
			return fmt.Errorf("readdir %s: %w", show(p), err)
		}
		if err := w.exp.checkListing(p, ents); err != nil {
			return err
		}
		for _, d := range ents {
			if err := w.lstat(path.Join(p, d.Name())); err != nil {
				return err
			}
		}
		return nil
	})
	for _, k := range w.exp.tree.Children(w.exp.node(p)) { // the tree's subdirectories, whatever the mount showed
		if w.exp.tree.Node(k.Ino).FileMode().IsDir() {
			w.walk(path.Join(p, k.Name), stop)
		}
	}
}
