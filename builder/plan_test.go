package builder

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/overlay"
)

// Synthetic trees: overlay entries, no files.
func ent(name string, typ overlay.Type, opts ...func(*overlay.Entry)) overlay.Entry {
	e := overlay.Entry{Name: name, Type: typ, Mode: 0o644}
	if typ == overlay.TypeDir {
		e.Mode = 0o755
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func size(n int64) func(*overlay.Entry)    { return func(e *overlay.Entry) { e.Size = n } }
func target(s string) func(*overlay.Entry) { return func(e *overlay.Entry) { e.Linkname = s } }
func mtime(s int64) func(*overlay.Entry)   { return func(e *overlay.Entry) { e.MTime = s } }
func sparse(x ...overlay.Extent) func(*overlay.Entry) {
	return func(e *overlay.Entry) { e.Sparse = x }
}
func xattrs(kv ...string) func(*overlay.Entry) {
	return func(e *overlay.Entry) {
		for i := 0; i < len(kv); i += 2 {
			e.Xattrs = append(e.Xattrs, overlay.Xattr{Name: kv[i], Value: kv[i+1]})
		}
	}
}

func treeOf(t testing.TB, es ...overlay.Entry) *overlay.Tree {
	t.Helper()
	tr, err := overlay.Merge([]*overlay.Layer{{Entries: es}})
	if err != nil {
		t.Fatalf("merging: %v", err)
	}
	return tr
}

// wideDir is a directory of n empty files with names of length k.
func wideDir(t testing.TB, n, k int) *overlay.Tree {
	es := []overlay.Entry{ent("d", overlay.TypeDir)}
	for i := range n {
		es = append(es, ent("d/"+name(i, k), overlay.TypeRegular))
	}
	return treeOf(t, es...)
}

// The directory figures come from mkfs.ext4 -d and e2fsck -fyD runs
// (e2fsprogs 1.47.0) over directories of 11-character names (20-byte
// entries): 203 fit one block; from two blocks on, e2fsck indexes the
// directory with leaves 80% full.
func TestDirBlocks(t *testing.T) {
	for _, c := range []struct {
		n        int
		min, max uint64 // measured, and what the estimate may reach
	}{
		{0, 1, 1}, {100, 1, 1}, {203, 1, 1}, {204, 3, 3}, {250, 3, 3},
		{400, 4, 4}, {1000, 8, 8}, {5000, 32, 33}, {50000, 306, 309},
	} {
		tr := wideDir(t, c.n, 11)
		got := dirBlocks(tr, tr.Get("d"))
		if got < c.min || got > c.max {
			t.Errorf("%d entries: %d blocks, want %d (up to %d)", c.n, got, c.min, c.max)
		}
	}
}

func TestPackDirents(t *testing.T) {
	// 4084 usable bytes a block, 24 taken by "." and ".." in the first.
	if got := packDirents([]uint64{4060}); got != 1 {
		t.Errorf("exactly full first block: %d blocks", got)
	}
	if got := packDirents([]uint64{4060, 4}); got != 2 {
		t.Errorf("one more entry: %d blocks", got)
	}
	if got := packDirents([]uint64{3000, 3000, 3000}); got != 3 {
		t.Errorf("entries that do not share blocks: %d blocks", got)
	}
}

func TestDirentSize(t *testing.T) {
	for n, want := range map[int]uint64{1: 12, 4: 12, 5: 16, 11: 20, 12: 20, 255: 264} {
		if got := direntSize(strings.Repeat("a", n)); got != want {
			t.Errorf("name of %d bytes: %d, want %d", n, got, want)
		}
	}
}

func TestFileBlocks(t *testing.T) {
	for _, c := range []struct {
		e    overlay.Entry
		want uint64
	}{
		{ent("f", overlay.TypeRegular), 0},
		{ent("f", overlay.TypeRegular, size(1)), 1},
		{ent("f", overlay.TypeRegular, size(4096)), 1},
		{ent("f", overlay.TypeRegular, size(4097)), 2},
		{ent("f", overlay.TypeRegular, size(1<<30)), 262144},
		// sparse: only blocks holding data count, a shared block once
		{ent("f", overlay.TypeRegular, size(1<<30), sparse(overlay.Extent{Off: 0, Len: 10}, overlay.Extent{Off: 100, Len: 5000}, overlay.Extent{Off: 1 << 29, Len: 8192})), 4},
		{ent("f", overlay.TypeRegular, size(1<<30), sparse()), 262144},
	} {
		tr := treeOf(t, c.e)
		if got := fileBlocks(tr.Get("f")); got != c.want {
			t.Errorf("%d bytes, sparse %v: %d blocks, want %d", c.e.Size, c.e.Sparse, got, c.want)
		}
	}
}

func TestExtentTreeBlocks(t *testing.T) {
	for extents, want := range map[uint64]uint64{0: 0, 4: 0, 5: 1, 340: 1, 341: 2, 1360: 4, 1361: 5 + 1} {
		if got := extentTreeBlocks(extents); got != want {
			t.Errorf("%d extents: %d blocks, want %d", extents, got, want)
		}
	}
	// A contiguous file below 128 MiB needs no extent block.
	tr := treeOf(t, ent("f", overlay.TypeRegular, size(100<<20)))
	if c, _ := countTree(tr); c.Extents != 0 {
		t.Errorf("100 MiB file: %d extent blocks", c.Extents)
	}
}

func TestSymlinkBlocks(t *testing.T) {
	tr := treeOf(t,
		ent("fast", overlay.TypeSymlink, target(strings.Repeat("a", 59))),
		ent("slow", overlay.TypeSymlink, target(strings.Repeat("a", 60))),
		ent("long", overlay.TypeSymlink, target(strings.Repeat("a", 4000))))
	c, err := countTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Symlinks != 2 {
		t.Errorf("symlink blocks %d, want 2 (60 bytes and more)", c.Symlinks)
	}
}

func TestXattrBlocks(t *testing.T) {
	caps := "\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	for _, c := range []struct {
		kv   []string
		want uint64
		err  bool
	}{
		{nil, 0, false},
		{[]string{"security.capability", caps}, 0, false}, // 4+16+12+4+20 = 56
		{[]string{"user.a", strings.Repeat("v", 64)}, 0, false},
		{[]string{"user.a", strings.Repeat("v", 68)}, 0, false},                  // 4+20+4+68 = 96: just fits
		{[]string{"user.a", strings.Repeat("v", 72)}, 1, false},                  // measured: a block
		{[]string{"user.a", strings.Repeat("v", 1500)}, 1, false},                // a block
		{[]string{"system.posix_acl_access", strings.Repeat("a", 44)}, 0, false}, // name is an index
		{[]string{"user.a", strings.Repeat("v", 3000), "user.b", strings.Repeat("v", 1200)}, 0, true},
	} {
		got, err := xattrBlocks(xattrList(c.kv...))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: %d blocks, error %v; want %d, error %v", short(c.kv), got, err, c.want, c.err)
		}
	}
}

func xattrList(kv ...string) []overlay.Xattr {
	var xs []overlay.Xattr
	for i := 0; i < len(kv); i += 2 {
		xs = append(xs, overlay.Xattr{Name: kv[i], Value: kv[i+1]})
	}
	return xs
}

func short(kv []string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%d bytes ", kv[i], len(kv[i+1]))
	}
	return b.String()
}

func TestContentErrors(t *testing.T) {
	big := ent("usr/bin/x", overlay.TypeRegular, xattrs("user.a", strings.Repeat("v", 3000), "user.b", strings.Repeat("v", 1500)))
	_, err := Plan(treeOf(t, big), Options{})
	var ce *ContentError
	if !errors.As(err, &ce) || ce.Path != "usr/bin/x" {
		t.Errorf("oversized xattrs: %v, want a ContentError naming usr/bin/x", err)
	}
	_, err = Plan(treeOf(t, ent("lost+found", overlay.TypeRegular)), Options{})
	if !errors.As(err, &ce) || ce.Path != "lost+found" {
		t.Errorf("lost+found file: %v, want a ContentError", err)
	}
}

func TestInodes(t *testing.T) {
	tr := treeOf(t, ent("a", overlay.TypeRegular), ent("b", overlay.TypeDir), ent("b/c", overlay.TypeRegular),
		ent("b/h", overlay.TypeHardlink, target("a")))
	c, err := countTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	// 10 reserved (root among them), lost+found, a (= b/h), b, b/c
	if c.Inodes != 14 {
		t.Errorf("inodes %d, want 14", c.Inodes)
	}
	withLF := treeOf(t, ent("lost+found", overlay.TypeDir), ent("a", overlay.TypeRegular))
	if c, _ := countTree(withLF); c.Inodes != 12 {
		t.Errorf("with the image's own lost+found: %d inodes, want 12", c.Inodes)
	}
	_, err = Plan(tr, Options{Inodes: 13})
	var small *TooSmallError
	if !errors.As(err, &small) || !small.Inodes || small.Need != 14 {
		t.Errorf("--inodes 13: %v, want TooSmallError{Inodes} needing 14", err)
	}
	l, err := Plan(tr, Options{Inodes: 1000})
	if err != nil || l.Inodes < 1000 || l.Inodes > 1000+16 {
		t.Errorf("--inodes 1000: %d inodes, %v", l.Inodes, err)
	}
	l, err = Plan(tr, Options{Headroom: 100})
	if err != nil || l.Inodes < 28 {
		t.Errorf("headroom 100%%: %d inodes, %v; want at least twice 14", l.Inodes, err)
	}
	l, err = Plan(tr, Options{Free: 160 << 20})
	if err != nil || l.Inodes < 14+10240 {
		t.Errorf("--free 160M: %d inodes, %v; want one more per 16 KiB", l.Inodes, err)
	}
}
