package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/faultproxy"
	"github.com/ocifs/ocifs/internal/fswalk"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// lazyImage is an image pushed to the real registry, its eStargz
// conversion (made by 'ocifs convert'), and a fault proxy in front of the
// registry, through which the lazy mounts read.
type lazyImage struct {
	ref, conv string // conv through the proxy
	proxy     *faultproxy.Proxy
	origEnv   []string // the cache the original was pulled into
}

func newLazyImage(t *testing.T, name string, layers [][]byte) *lazyImage {
	t.Helper()
	reg := testregistry.Start(t)
	ref := reg.Repo(name) + ":v1"
	ti.Push(t, ti.Image(t, layers, ti.WithPlatform("linux/amd64")), ref)
	env := cacheEnv(t)
	mustOcifs(t, env, "convert", "--chunk-size", "262144", ref, reg.Repo(name)+":estargz")
	p := faultproxy.Start(t, reg.Addr)
	return &lazyImage{ref: ref, conv: p.Addr + "/" + reg.Prefix() + "/" + name + ":estargz", proxy: p, origEnv: env}
}

func cacheEnv(t *testing.T) []string {
	return []string{"OCIFS_CACHE_DIR=" + t.TempDir()}
}

// lazyLayers is the merge rules image plus a layer of bigger random files.
func lazyLayers() [][]byte {
	r := rand.New(rand.NewPCG(9, 9))
	var es []ti.Entry
	es = append(es, ti.Dir("data"))
	for i := range 6 {
		b := make([]byte, 300<<10+i*7777)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		es = append(es, ti.File(fmt.Sprintf("data/blob%d", i), string(b)))
	}
	for i := range 30 {
		es = append(es, ti.File(fmt.Sprintf("data/small/f%02d", i), strings.Repeat("s", i+1)))
	}
	return append(rulesLayers(), ti.Layer(es...))
}

// manifestRequests counts the manifest requests the proxy has seen.
func manifestRequests(p *faultproxy.Proxy) (n int) {
	for _, r := range p.Requests() {
		if strings.Contains(r.Path, "/manifests/") {
			n++
		}
	}
	return n
}

// blobBytesSent sums the blob bytes the proxy has sent.
func blobBytesSent(p *faultproxy.Proxy) (n int64) {
	for _, r := range p.Requests() {
		if strings.Contains(r.Path, "/blobs/") {
			n += r.Sent
		}
	}
	return n
}

// TestLazyMountMatchesPull: a lazy mount of the eStargz conversion shows
// exactly what a mount of the pulled original shows, before and after the
// background fetch completes, and so does an ordinary mount once the
// image is complete in the cache.
func TestLazyMountMatchesPull(t *testing.T) {
	li := newLazyImage(t, "lazy-match", lazyLayers())
	want := walkMount(t, mountImageEnv(t, li.origEnv, li.ref))

	env := cacheEnv(t)
	before, manifests := blobBytesSent(li.proxy), manifestRequests(li.proxy)
	dir := mountImageEnv(t, env, li.conv, "--lazy")
	if n := blobBytesSent(li.proxy) - before; n > 256<<10 {
		t.Fatalf("a lazy mount fetched %d blob bytes before any read (TOCs and small layers expected)", n)
	}
	// ocifs mount resolves the ref; its server uses what it stored.
	if n := manifestRequests(li.proxy) - manifests; n != 1 {
		t.Errorf("ocifs mount --lazy asked for %d manifests, want 1", n)
	}
	before = blobBytesSent(li.proxy)
	if n := metadataWalk(t, dir); n < 10 {
		t.Fatalf("the metadata walk saw %d paths", n)
	}
	if n := blobBytesSent(li.proxy) - before; n != 0 {
		t.Fatalf("a metadata walk of the lazy mount fetched %d blob bytes, want none (the TOCs hold it all)", n)
	}
	got := walkMount(t, dir)
	requireNoDiff(t, "lazy mount of the eStargz conversion (a) vs mount of the original (b)", got, want, exact)

	env2 := cacheEnv(t)
	dir = mountImageEnv(t, env2, li.conv, "--lazy", "--background-fetch")
	waitRecorded(t, env2, li.conv)
	requireNoDiff(t, "lazy mount after the background fetch (a) vs original (b)", walkMount(t, dir), want, exact)
	before = blobBytesSent(li.proxy)
	requireNoDiff(t, "ordinary mount of the fetched conversion (a) vs original (b)", walkMount(t, mountImageEnv(t, env2, li.conv)), want, exact)
	if n := blobBytesSent(li.proxy) - before; n != 0 {
		t.Fatalf("mounting the fetched image sent %d more blob bytes", n)
	}
	mustOcifs(t, env2, "cache", "verify")
}

// metadataWalk records every path under dir without reading file content,
// as `find -printf` or `ls -lR` would (lstat, readlink, xattrs); it
// returns the number of paths.
func metadataWalk(t *testing.T, dir string) int {
	t.Helper()
	recs, err := fswalk.Walk(dir, fswalk.WalkOptions{NoContent: true})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// waitRecorded waits for the background fetch to record the image.
func waitRecorded(t *testing.T, env []string, ref string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if out, _, code := runOcifs(t, env, "cache", "ls"); code == 0 && strings.Contains(out, ref[strings.Index(ref, "/"):]) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the background fetch did not record %s within 2 minutes", ref)
}

// TestLazyWithoutRange: through a proxy that ignores Range, a lazy mount
// pulls the image whole, warns once, and shows the right tree.
func TestLazyWithoutRange(t *testing.T) {
	li := newLazyImage(t, "lazy-norange", lazyLayers())
	want := walkMount(t, mountImageEnv(t, li.origEnv, li.ref))
	li.proxy.Add(faultproxy.Rule{Path: "/blobs/", Fault: faultproxy.IgnoreRange})
	env := cacheEnv(t)
	dir := mountDir(t)
	_, stderr, code := runOcifs(t, env, "mount", "--lazy", li.conv, dir)
	if code != 0 {
		t.Fatalf("ocifs mount --lazy: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "does not serve Range"); n != 1 {
		t.Fatalf("%d notices about Range support, want 1:\n%s", n, stderr)
	}
	requireNoDiff(t, "mount without Range (a) vs original (b)", walkMount(t, dir), want, exact)
}

// TestLazyRegistryGoneMidRead: with the registry gone, a read of a file
// not fetched yet fails with EIO within the lazy timeout (plus retries),
// the server says why, the mount stays, and the read succeeds once the
// registry is back.
func TestLazyRegistryGoneMidRead(t *testing.T) {
	requireFUSEMount(t)
	li := newLazyImage(t, "lazy-gone", lazyLayers())
	dir := mountDir(t)
	stderr := mountForeground(t, cacheEnv(t), "--lazy", "--lazy-timeout", "3s", "--retries", "1", li.conv, dir)
	if _, err := os.ReadFile(filepath.Join(dir, "data/small/f01")); err != nil {
		t.Fatalf("reading with the registry up: %v", err)
	}
	li.proxy.Add(faultproxy.Rule{Path: "/blobs/", Fault: faultproxy.Status, Status: 503})
	start := time.Now()
	_, err := os.ReadFile(filepath.Join(dir, "data/blob4"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading with the registry gone: %v, want EIO", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the failing read took %v", d)
	}
	if !strings.Contains(stderr.String(), "reading a lazily fetched layer") {
		t.Fatalf("the server did not say why the read failed:\n%s", stderr.String())
	}
	li.proxy.Reset()
	b, err := os.ReadFile(filepath.Join(dir, "data/blob4"))
	if err != nil || len(b) != 300<<10+4*7777 {
		t.Fatalf("reading after the registry came back: %d bytes, %v", len(b), err)
	}
}

// lockedBuffer is a strings.Builder safe to read while a process's output
// is copied into it.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mountForeground runs `ocifs mount --foreground ARGS`, whose last two
// are REF and DIR, until the test ends (then SIGTERM), and returns once
// DIR is mounted. Its stderr is returned as it grows.
func mountForeground(t *testing.T, env []string, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := new(lockedBuffer) // written by exec's copier while the test reads it
	cmd := ocifsCommand(ctx, t, env, append([]string{"mount", "--foreground"}, args...)...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		cancel()
	})
	waitMounted(t, args[len(args)-1], stderr)
	return stderr
}

// waitMounted waits until dir is a mount point whose root answers stat
// (not a listing: a filling mount lists only once every layer is in).
// stderr is the server's, shown if it never does.
func waitMounted(t *testing.T, dir string, stderr *lockedBuffer) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if isMountPoint(dir) {
			if _, err := os.Lstat(dir); err == nil {
				return
			}
		}
	}
	t.Fatalf("%s was not mounted within a minute; ocifs said:\n%s", dir, stderr.String())
}

// TestLazyBuild: ocifs build --lazy builds from a lazily read image (the
// builder's e2fsck checks the result) and leaves it complete in the cache.
func TestLazyBuild(t *testing.T) {
	requireFUSEMount(t)
	li := newLazyImage(t, "lazy-build", lazyLayers())
	env := cacheEnv(t)
	out := filepath.Join(t.TempDir(), "lazy.ext4")
	mustOcifs(t, env, "build", "--lazy", li.conv, out)
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("no image at %s: %v", out, err)
	}
	waitRecorded(t, env, li.conv)
}
