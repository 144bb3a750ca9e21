package integration

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/faultproxy"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// fillImage is an image of ordinary gzip layers in the real registry,
// whose layers name the parents of their entries, as image builders
// write them. ref goes through a fault proxy.
type fillImage struct {
	ref   string
	proxy *faultproxy.Proxy
	blobs []string // the layers' digests, base first
	sizes []int64  // their blob sizes
}

const fillBaseMiB = 24

// randomBytes returns n incompressible bytes (a blob holding them is as
// big), the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// newFillImage pushes a big base layer and a small top one.
func newFillImage(t *testing.T, name string) *fillImage {
	t.Helper()
	base := ti.Layer(
		ti.Dir("./"), ti.Dir("etc"), ti.Dir("usr"), ti.Dir("usr/bin"), ti.Dir("data"),
		ti.File("etc/os-release", "ID=test\n"), ti.File("etc/old", "old\n"),
		ti.File("usr/bin/sh", "#!sh\n", ti.Mode(0o755)), ti.File("data/big", string(randomBytes(3, fillBaseMiB<<20))),
	)
	top := ti.Layer(
		ti.Dir("etc"), ti.File("etc/app.conf", "port=80\n", ti.Owner(1000, 1000)), ti.Whiteout("etc/old"),
		ti.Dir("app"), ti.File("app/run", "#!/bin/sh\necho run\n", ti.Mode(0o755)), ti.Hardlink("app/run2", "app/run"),
		ti.Symlink("app/sh", "/usr/bin/sh"),
	)
	return pushFillImage(t, name, base, top)
}

// pushFillImage pushes an image of layers (tar streams, base first).
func pushFillImage(t *testing.T, name string, layers ...[]byte) *fillImage {
	t.Helper()
	reg := testregistry.Start(t)
	img := ti.Image(t, layers, ti.WithPlatform("linux/amd64"))
	ti.Push(t, img, reg.Repo(name)+":v1")
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(t, reg.Addr)
	fi := &fillImage{ref: p.Addr + "/" + reg.Prefix() + "/" + name + ":v1", proxy: p}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		fi.blobs, fi.sizes = append(fi.blobs, d.String()), append(fi.sizes, size)
	}
	return fi
}

// sent returns the bytes the proxy has sent of layer i's blob.
func (fi *fillImage) sent(i int) (n int64) {
	for _, r := range fi.proxy.Requests() {
		if strings.HasSuffix(r.Path, "/blobs/"+fi.blobs[i]) {
			n += r.Sent
		}
	}
	return n
}

// TestFillingMount: `ocifs mount --lazy` of an image of gzip layers
// returns before the big base layer is downloaded. What the top layer
// decides answers at once, content included, with the attributes it keeps
// for good (inode numbers, link counts); a path of the base layer waits
// for it; once every layer is in, the mount shows exactly what a mount of
// the pulled image shows, and the cache holds the image as a pull leaves
// it.
func TestFillingMount(t *testing.T) {
	requireFUSEMount(t)
	fi := newFillImage(t, "fill")
	want := walkMount(t, mountImageEnv(t, cacheEnv(t), fi.ref))

	fi.proxy.SetRate(4 << 20) // the base layer takes 6 s
	env := cacheEnv(t)
	before, manifests := blobBytesSent(fi.proxy), manifestRequests(fi.proxy)
	start := time.Now()
	dir := mountImageEnv(t, env, fi.ref, "--lazy")
	t.Logf("mounted in %v", time.Since(start))
	run := filepath.Join(dir, "app/run")
	b, err := os.ReadFile(run)
	if err != nil || string(b) != "#!/bin/sh\necho run\n" {
		t.Fatalf("reading a file of the top layer while filling: %q, %v", b, err)
	}
	early, err := os.Lstat(run)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.Lstat(filepath.Join(dir, "etc/app.conf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("top layer's files answered after %v", time.Since(start))
	if sent := blobBytesSent(fi.proxy) - before; sent >= fi.sizes[0] {
		t.Fatalf("the top layer's files answered only after %d blob bytes were sent (the base layer has %d)", sent, fi.sizes[0])
	}
	if st := conf.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Nlink != 1 {
		t.Fatalf("etc/app.conf while filling: uid %d nlink %d", st.Uid, st.Nlink)
	}
	if st := early.Sys().(*syscall.Stat_t); st.Nlink != 2 {
		t.Fatalf("app/run while filling: nlink %d, want 2", st.Nlink)
	}

	// A path of the base layer waits for it, then answers.
	if b, err := os.ReadFile(filepath.Join(dir, "usr/bin/sh")); err != nil || string(b) != "#!sh\n" {
		t.Fatalf("reading a file of the base layer: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("etc/old, whited out by the top layer: %v", err)
	}
	got := walkMount(t, dir)
	requireNoDiff(t, "filled mount (a) vs mount of the pulled image (b)", got, want, exact)
	// ocifs mount resolves the ref; its server pulls what it resolved.
	if n := manifestRequests(fi.proxy) - manifests; n != 1 {
		t.Errorf("ocifs mount --lazy and its pull asked for %d manifests, want 1", n)
	}
	late, err := os.Lstat(filepath.Join(dir, "app/run2"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := early.Sys().(*syscall.Stat_t).Ino, late.Sys().(*syscall.Stat_t).Ino; a != b {
		t.Fatalf("app/run's inode while filling is %d, its hardlink app/run2's once complete %d", a, b)
	}
	waitRecorded(t, env, fi.ref)
	mustOcifs(t, env, "cache", "verify")
}

// TestFillingPriority: a request waiting for a middle layer gets the
// link: the base layer's download yields to the middle one's until the
// request is answered, then completes.
func TestFillingPriority(t *testing.T) {
	requireFUSEMount(t)
	const mib = 48 // per big layer: 3 s each at the rate below
	fi := pushFillImage(t, "fill-priority",
		ti.Layer(ti.Dir("./"), ti.Dir("data"), ti.File("data/base", string(randomBytes(5, mib<<20)))),
		ti.Layer(ti.Dir("mid"), ti.File("mid/conf", "mid\n"), ti.File("mid/blob", string(randomBytes(6, mib<<20)))),
		ti.Layer(ti.Dir("app"), ti.File("app/run", "run\n")),
	)
	fi.proxy.SetRate(16 << 20)
	start := time.Now()
	dir := mountImageEnv(t, cacheEnv(t), fi.ref, "--lazy")
	// Until the lookup below waits, the layers share the link.
	base0, mid0 := fi.sent(0), fi.sent(1)
	if b, err := os.ReadFile(filepath.Join(dir, "mid/conf")); err != nil || string(b) != "mid\n" {
		t.Fatalf("reading a file of the middle layer while filling: %q, %v", b, err)
	}
	base, mid := fi.sent(0)-base0, fi.sent(1)-mid0
	t.Logf("mid/conf answered after %v; while it was read the proxy sent %d more bytes of the middle layer's blob (%d in all) and %d more of the base layer's (%d in all)",
		time.Since(start).Round(time.Millisecond), mid, fi.sizes[1], base, fi.sizes[0])
	// Sharing the link, the base layer would have got as much as the
	// middle one meanwhile; yielding, it gets what the sockets buffer (on
	// loopback up to about 10 MiB).
	if base >= max(mid/2, fi.sizes[1]/4) {
		t.Errorf("while a lookup waited for the middle layer, its download got %d bytes through and the base layer's %d", mid, base)
	}
	fi.proxy.SetRate(0)
	if b, err := os.ReadFile(filepath.Join(dir, "data/base")); err != nil || len(b) != mib<<20 {
		t.Fatalf("reading the base layer's file once the request is answered: %d bytes, %v", len(b), err)
	}
}

// TestFillingRegistryGone: while a mount fills, the registry stops
// answering. A request that waits for the missing layer fails with EIO in
// bounded time and the server says why; what the downloaded layers decide
// keeps answering; once the registry is back the download resumes and the
// waiting paths answer.
func TestFillingRegistryGone(t *testing.T) {
	requireFUSEMount(t)
	fi := newFillImage(t, "fill-gone")
	// The base layer's blob is unavailable (the small top layer is in
	// long before the pull's retries give up on it).
	fi.proxy.Add(faultproxy.Rule{Path: "/blobs/" + fi.blobs[0], Fault: faultproxy.Status, Status: 503})
	dir := mountDir(t)
	stderr := mountForeground(t, cacheEnv(t), "--lazy", "--retries", "1", fi.ref, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "app/run")); err != nil || !strings.HasPrefix(string(b), "#!") {
		t.Fatalf("reading a file of the downloaded top layer: %q, %v", b, err)
	}
	start := time.Now()
	_, err := os.Lstat(filepath.Join(dir, "usr/bin/sh"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("a path of the missing base layer with the registry gone: %v, want EIO", err)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Fatalf("the failing lookup took %v", d)
	}
	// The server logs why before it fails the request; its stderr
	// reaches the buffer through a pipe, a moment later.
	waitStderr(t, stderr, "retrying")
	if _, err := os.ReadFile(filepath.Join(dir, "app/run")); err != nil {
		t.Fatalf("the top layer's file after the failure: %v", err)
	}
	fi.proxy.Reset()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "usr/bin/sh"))
		if err == nil && string(b) == "#!sh\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the base layer's file after the registry came back: %q, %v", b, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestFillingRegistrySilent: while a mount fills, the registry stops
// sending mid-blob without closing the connection. A request that waits
// for the missing layer fails with EIO after --lazy-timeout, long before
// the pull's own retries of the stalled download would give up (30 s per
// attempt); once the registry sends again, the waiting paths wait again
// (no EIO) and then answer.
func TestFillingRegistrySilent(t *testing.T) {
	requireFUSEMount(t)
	fi := newFillImage(t, "fill-silent")
	fi.proxy.Add(faultproxy.Rule{Path: "/blobs/" + fi.blobs[0], Fault: faultproxy.Stall, After: 1 << 20})
	dir := mountDir(t)
	stderr := mountForeground(t, cacheEnv(t), "--lazy", "--lazy-timeout", "2s", fi.ref, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "app/run")); err != nil || !strings.HasPrefix(string(b), "#!") {
		t.Fatalf("reading a file of the downloaded top layer: %q, %v", b, err)
	}
	start := time.Now()
	lookup := make(chan error, 1)
	go func() { _, err := os.Lstat(filepath.Join(dir, "usr/bin/sh")); lookup <- err }()
	select {
	case err := <-lookup:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("a path of the base layer with the registry silent: %v, want EIO", err)
		}
		t.Logf("the lookup failed after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatalf("a lookup of the base layer still waits after 15 s of a silent registry; --lazy-timeout is 2s")
	}
	waitStderr(t, stderr, "has sent nothing")
	if _, err := os.ReadFile(filepath.Join(dir, "app/run")); err != nil {
		t.Fatalf("the top layer's file while the registry is silent: %v", err)
	}
	// The stalled response breaks off and the resumed one is served, at
	// a pace that leaves the base layer a few seconds to arrive.
	fi.proxy.SetRate(8 << 20)
	fi.proxy.Reset()
	waitStderr(t, stderr, `msg="the registry sends again`)
	if b, err := os.ReadFile(filepath.Join(dir, "usr/bin/sh")); err != nil || string(b) != "#!sh\n" {
		t.Fatalf("the base layer's file once the registry sends again: %q, %v\n%s", b, err, stderr.String())
	}
}

// waitStderr waits up to 30 s for s in a server's stderr, which reaches
// the buffer through a pipe.
func waitStderr(t *testing.T, stderr *lockedBuffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), s); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q:\n%s", s, stderr.String())
		}
	}
}
