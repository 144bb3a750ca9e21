package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/faultproxy"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// TestConcurrentBuildsMountsPull runs, as separate processes on one cold
// cache and all at once, three builds (two of image A onto the same
// output, one of B), two mounts (A, and C which extends A) and a pull of
// C, through a proxy that slows blobs down so that they overlap on the
// shared base layer. All must succeed: the outputs pass e2fsck and equal
// a later build of the same image byte for byte, the mounts show their
// merged trees, the cache verifies and holds no temporary files.
func TestConcurrentBuildsMountsPull(t *testing.T) {
	requireBuild(t)
	reg := testregistry.Start(t)
	var es []ti.Entry
	for d := range 5 {
		es = append(es, ti.Dir(fmt.Sprintf("usr/d%d", d)))
		for i := range 400 {
			es = append(es, ti.File(fmt.Sprintf("usr/d%d/f%03d", d, i), strings.Repeat(fmt.Sprint(i), 1+i)))
		}
	}
	base := ti.Layer(es...)
	layerA := ti.Layer(ti.File("etc/a", "a\n"), ti.Whiteout("usr/d4"))
	images := map[string][][]byte{
		"a": {base, layerA},
		"b": {base, ti.Layer(ti.File("etc/b", "b\n"), ti.Hardlink("etc/b2", "etc/b"))},
		"c": {base, layerA, ti.Layer(ti.File("etc/c", "c\n"), ti.Symlink("etc/a-link", "a"))},
	}
	for name, layers := range images {
		ti.Push(t, ti.Image(t, layers, ti.WithCompression([]ti.Compression{ti.Gzip, ti.Zstd, ti.Gzip}[:len(layers)]...)), reg.Repo(name)+":v1")
	}
	proxy := faultproxy.Start(t, reg.Addr)
	proxy.Add(faultproxy.Rule{Path: "/blobs/", Fault: faultproxy.Delay, Wait: 200 * time.Millisecond})
	ref := func(name string) string { return proxy.Addr + "/" + reg.Prefix() + "/" + name + ":v1" }

	outs := t.TempDir()
	out := func(name string) string { return filepath.Join(outs, name) }
	mnts := map[string]string{"a": mountDir(t), "c": mountDir(t)}
	runs := [][]string{
		{"build", ref("a"), out("a.ext4")}, {"build", ref("a"), out("a.ext4")}, {"build", ref("b"), out("b.ext4")},
		{"mount", ref("a"), mnts["a"]}, {"mount", ref("c"), mnts["c"]}, {"pull", ref("c")},
	}
	runConcurrently(t, runs)
	for name, dir := range mnts {
		tree, img := mergedTree(t, ref(name))
		requireNoDiff(t, "mount of "+name+" (a) vs merged tree (b)", walkMount(t, dir), treeRecords(t, tree, img), exact)
	}
	for _, name := range []string{"a", "b"} {
		fsck(t, out(name+".ext4"))
		mustOcifs(t, nil, "build", ref(name), out(name+"-again.ext4"))
		if fileSHA256(t, out(name+".ext4")) != fileSHA256(t, out(name+"-again.ext4")) {
			t.Errorf("the concurrent build of %s differs from a build on its own", name)
		}
	}
	if left := buildTemps(outs); len(left) > 0 {
		t.Errorf("temporary directories left next to the outputs: %v", left)
	}
	mustOcifs(t, nil, "cache", "verify")
	if ls := cacheLs(t); len(ls) != 3 {
		t.Errorf("cache ls: %d images, want 3: %+v", len(ls), ls)
	}
	checkNoTempFiles(t)
	for _, dir := range mnts {
		pid := serverPid(t, dir)
		mustOcifs(t, nil, "umount", dir)
		checkGone(t, dir, pid)
	}
}

// runConcurrently runs ocifs once per args, all at once, and fails the
// test for each run that fails.
func runConcurrently(t *testing.T, runs [][]string) {
	t.Helper()
	ocifsBinary(t) // built once, before the runs race for it
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	var wg sync.WaitGroup
	outs := make([]string, len(runs))
	errs := make([]error, len(runs))
	took := make([]time.Duration, len(runs))
	for i, args := range runs {
		cmd := ocifsCommand(ctx, t, nil, args...)
		wg.Go(func() {
			start := time.Now()
			b, err := cmd.CombinedOutput()
			outs[i], errs[i], took[i] = string(b), err, time.Since(start)
		})
	}
	wg.Wait()
	for i, args := range runs {
		t.Logf("ocifs %s: %v in %v", strings.Join(args, " "), errs[i], took[i].Round(time.Millisecond))
		if errs[i] != nil {
			t.Errorf("ocifs %s: %v\n%s", strings.Join(args, " "), errs[i], outs[i])
		}
	}
}
