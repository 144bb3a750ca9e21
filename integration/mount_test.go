package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/internal/oracle"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
	"github.com/ocifs/ocifs/overlay"
)

// mountDir returns a fresh empty directory to mount on; whatever is
// mounted there is gone when the test ends.
func mountDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unmountAtCleanup(t, dir)
	return dir
}

// mountImage runs `ocifs mount [args] REF DIR` on a fresh directory and
// `ocifs umount DIR` at the end of the test.
func mountImage(t *testing.T, ref string, args ...string) string {
	t.Helper()
	requireFUSEMount(t)
	dir := mountDir(t)
	mustOcifs(t, nil, append(append([]string{"mount"}, args...), ref, dir)...)
	t.Cleanup(func() {
		if isMountPoint(dir) {
			if _, stderr, code := runOcifs(t, nil, "umount", dir); code != 0 {
				t.Errorf("ocifs umount %s: exit %d: %s", dir, code, stderr)
			}
		}
	})
	return dir
}

func walkMount(t *testing.T, dir string) []fswalk.Record {
	t.Helper()
	recs, err := fswalk.Walk(dir, fswalk.WalkOptions{Trusted: true})
	if err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	return recs
}

func requireNoDiff(t *testing.T, what string, a, b []fswalk.Record, opts fswalk.DiffOptions) {
	t.Helper()
	if d := fswalk.Diff(a, b, opts); len(d) > 0 {
		t.Errorf("%s: %d differences:\n%s", what, len(d), strings.Join(d, "\n"))
	}
}

// exact compares every field, mtimes to the nanosecond.
var exact = fswalk.DiffOptions{MTimeGranularity: time.Nanosecond}

// TestMountMatchesUmoci mounts multi-layer images from the real registry
// with the real binary and compares a full walk of the mount (lstat,
// readlink, xattrs, content hashes, hardlink groups) with umoci unpack of
// the same image, and, field for field with mtimes, with the merged tree.
func TestMountMatchesUmoci(t *testing.T) {
	reg := testregistry.Start(t)
	cases := map[string][][]byte{"rules": rulesLayers()}
	for seed := uint64(11); seed <= 13; seed++ {
		cases[fmt.Sprintf("random-%d", seed)] = ti.Random(t, seed, 4, 120)
	}
	for name, layers := range cases {
		t.Run(name, func(t *testing.T) {
			comps := []ti.Compression{ti.Gzip, ti.Zstd, ti.Uncompressed, ti.Gzip}[:len(layers)]
			img := ti.Image(t, layers, ti.WithCompression(comps...))
			ref := reg.Repo("mount-"+name) + ":v1"
			ti.Push(t, img, ref)
			mnt := mountImage(t, ref)
			got := walkMount(t, mnt)
			want, err := fswalk.Walk(oracle.UmociUnpackImage(t, img), fswalk.WalkOptions{Trusted: true})
			if err != nil {
				t.Fatal(err)
			}
			requireNoDiff(t, "mount (a) vs umoci (b)", got, want, fswalk.DefaultDiff)
			tree, cimg := mergedTree(t, ref)
			requireNoDiff(t, "mount (a) vs merged tree (b)", got, treeRecords(t, tree, cimg), exact)
			if len(got) < 20 {
				t.Errorf("only %d paths in the mount; the fixture is broken", len(got))
			}
		})
	}
}

// TestMountRulesDetails spot-checks what the rules image must show, so a
// fixture or oracle change cannot hide a regression in the comparison.
func TestMountRulesDetails(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("rules") + ":v1"
	ti.Push(t, ti.Image(t, rulesLayers()), ref)
	recs := map[string]fswalk.Record{}
	for _, r := range walkMount(t, mountImage(t, ref)) {
		recs[r.Path] = r
	}
	checks := []struct {
		path string
		ok   func(fswalk.Record) bool
		want string
	}{
		{"bin/su", func(r fswalk.Record) bool { return r.Perm == 0o4755 }, "setuid 4755"},
		{"bin/ping", func(r fswalk.Record) bool { return r.Xattrs["security.capability"] == string(ti.CapNetBindService()) }, "file capability"},
		{"bin/ls", func(r fswalk.Record) bool { return len(r.Links) == 2 && r.Nlink == 2 }, "hardlinked with bin/cat, busybox whited out"},
		{"etc/motd.link", func(r fswalk.Record) bool { return r.Nlink == 1 }, "the old motd, unlinked from the rewritten one"},
		{"dev/sda", func(r fswalk.Record) bool {
			return r.Type == fswalk.Block && r.Major == 8 && r.Minor == 0 && r.GID == 6
		}, "block device 8:0 group 6"},
		{"run/initctl", func(r fswalk.Record) bool { return r.Type == fswalk.Fifo }, "fifo"},
		{"opt/tool/c", func(r fswalk.Record) bool { return r.Type == fswalk.File }, "file in an opaque dir"},
		{"usr/lib/libm.so.6", func(r fswalk.Record) bool { return r.Type == fswalk.File }, "file written through the lib symlink"},
		{"tmp", func(r fswalk.Record) bool { return r.Perm == 0o1777 }, "sticky 1777"},
	}
	for _, c := range checks {
		if r, ok := recs[c.path]; !ok || !c.ok(r) {
			t.Errorf("%s: %+v, want %s", c.path, r, c.want)
		}
	}
	for _, gone := range []string{"opt/tool/a", "bin/busybox", "var/cache/apt/pkgcache.bin", "etc/.wh.motd"} {
		if _, ok := recs[gone]; ok {
			t.Errorf("%s is in the mount; it was whited out", gone)
		}
	}
}

// TestMountLayerViews checks the debugging views: --layers N against
// umoci of an image of the first N layers, --layer I against the raw
// layer, whiteout markers included.
func TestMountLayerViews(t *testing.T) {
	reg := testregistry.Start(t)
	layers := rulesLayers()
	ref := reg.Repo("views") + ":v1"
	ti.Push(t, ti.Image(t, layers), ref)

	got := walkMount(t, mountImage(t, ref, "--layers", "2"))
	want, err := fswalk.Walk(oracle.UmociUnpackImage(t, ti.Image(t, layers[:2])), fswalk.WalkOptions{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	requireNoDiff(t, "--layers 2 (a) vs umoci of 2 layers (b)", got, want, fswalk.DefaultDiff)

	raw := walkMount(t, mountImage(t, ref, "--layer", "1"))
	requireNoDiff(t, "--layer 1 (a) vs the raw layer (b)", raw, rawRecords(t, ref, 1), exact)
	seen := map[string]bool{}
	for _, r := range raw {
		seen[r.Path] = true
	}
	for _, p := range []string{"etc/.wh.motd", "var/cache/.wh.apt", "opt/tool/.wh..wh..opq", "etc/motd"} {
		if !seen[p] {
			t.Errorf("--layer 1 view lacks %s", p)
		}
	}
}

// rawRecords renders layer i of ref, as overlay.Raw sees it.
func rawRecords(t *testing.T, ref string, i int) []fswalk.Record {
	t.Helper()
	store, err := cache.Open(cacheDir(t), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Get(context.Background(), ref, cache.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	idx, err := img.Indexes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := overlay.Raw(idx[i], i)
	if err != nil {
		t.Fatal(err)
	}
	return treeRecords(t, tree, img)
}

// serverPid finds the background server serving dir.
func serverPid(t testing.TB, dir string) int {
	t.Helper()
	pid := testenv.MountServer(dir)
	if pid == 0 {
		t.Fatalf("no mount server for %s", dir)
	}
	return pid
}
