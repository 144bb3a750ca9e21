package fusefs

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
)

// The fixture language: layer(file("a", "x"), dir("d"), ...) builds a
// layer index and its content, laid out as a tar stream would hold it.

type fentry struct {
	overlay.Entry
	content []byte
}

type opt func(*fentry)

func perm(m uint32) opt         { return func(e *fentry) { e.Mode = m } }
func owner(uid, gid uint32) opt { return func(e *fentry) { e.UID, e.GID = uid, gid } }
func mtime(s int64, ns uint32) opt {
	return func(e *fentry) { e.MTime, e.MTimeNsec = s, ns }
}
func xattr(k, v string) opt {
	return func(e *fentry) {
		e.Xattrs = append(e.Xattrs, overlay.Xattr{Name: k, Value: v})
		sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Name < e.Xattrs[j].Name })
	}
}

// sparse makes the file's content sparse: only the given [off, off+len)
// extents are stored; the rest reads as zeros.
func sparse(extents ...[2]int64) opt {
	return func(e *fentry) {
		for _, x := range extents {
			e.Sparse = append(e.Sparse, overlay.Extent{Off: x[0], Len: x[1]})
		}
	}
}

func mk(name string, t overlay.Type, m uint32, opts []opt) fentry {
	e := fentry{Entry: overlay.Entry{Name: name, Type: t, Mode: m, MTime: 1700000000}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func file(name, content string, opts ...opt) fentry {
	return fileBytes(name, []byte(content), opts...)
}

func fileBytes(name string, content []byte, opts ...opt) fentry {
	f := mk(name, overlay.TypeRegular, 0644, nil)
	f.content, f.Size = content, int64(len(content))
	for _, o := range opts {
		o(&f)
	}
	return f
}

func dir(name string, opts ...opt) fentry { return mk(name, overlay.TypeDir, 0755, opts) }
func symlink(name, target string, opts ...opt) fentry {
	f := mk(name, overlay.TypeSymlink, 0777, opts)
	f.Linkname = target
	return f
}
func hardlink(name, target string) fentry {
	f := mk(name, overlay.TypeHardlink, 0644, nil)
	f.Linkname = target
	return f
}
func device(name string, t overlay.Type, major, minor uint32, opts ...opt) fentry {
	f := mk(name, t, 0600, opts)
	f.Devmajor, f.Devminor = major, minor
	return f
}
func fifo(name string, opts ...opt) fentry { return mk(name, overlay.TypeFifo, 0644, opts) }

// memImage is an image held in memory: layer indexes and their streams.
type memImage struct {
	layers []*overlay.Layer
	blobs  [][]byte
}

func (m *memImage) ReadLayerAt(l int, p []byte, off int64) (int, error) {
	return bytes.NewReader(m.blobs[l]).ReadAt(p, off)
}

// addLayer lays out the entries' content one after another, each after a
// 512-byte "header", as in a tar. A sparse file stores only its extents.
func (m *memImage) addLayer(es ...fentry) *memImage {
	l := &overlay.Layer{}
	var data []byte
	for _, e := range es {
		data = append(data, make([]byte, 512)...)
		e.Offset = int64(len(data))
		if e.Sparse != nil {
			for i := range e.Sparse {
				x := &e.Sparse[i]
				x.TarOff = int64(len(data))
				data = append(data, e.content[x.Off:x.Off+x.Len]...)
			}
		} else {
			data = append(data, e.content...)
		}
		l.Entries = append(l.Entries, e.Entry)
	}
	m.layers = append(m.layers, l)
	m.blobs = append(m.blobs, data)
	return m
}

func (m *memImage) merge(t testing.TB) *overlay.Tree {
	t.Helper()
	tree, err := overlay.Merge(m.layers)
	if err != nil {
		t.Fatalf("merging: %v", err)
	}
	return tree
}

// mountTree mounts tree on a fresh directory for the test's duration.
func mountTree(t testing.TB, tree *overlay.Tree, content overlay.LayerReader, opts Options) (*Server, string) {
	t.Helper()
	return mountTuned(t, tree, content, opts, fastTuning)
}

func mountTuned(t testing.TB, tree *overlay.Tree, content overlay.LayerReader, opts Options, tune tuning) (*Server, string) {
	t.Helper()
	dir := mountDir(t)
	opts.SelfAccess = true // the tests read the mount from this process
	srv, err := mount(dir, tree, content, opts, tune)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})
	return srv, dir
}

// mountDir returns a fresh mount point, or skips the test when mounting
// is impossible here.
func mountDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 { // the unprivileged path: fusermount3
		testenv.RequireTool(t, "fusermount3", "apt-get install -y fuse3")
	} else {
		testenv.RequireFUSE(t)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountImage merges m and mounts it.
func mountImage(t testing.TB, m *memImage) (*Server, string) {
	t.Helper()
	return mountTree(t, m.merge(t), m, Options{})
}

var epoch = time.Unix(1700000000, 0)

func newTestLogger(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lockedWriter serializes writes from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
