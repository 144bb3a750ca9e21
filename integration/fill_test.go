package integration

import (
	"context"
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

// fillImage is an image of ordinary gzip layers in the real registry: a
// big base layer and a small top one, as image builders write them (each
// layer names the parents of its entries). ref goes through a fault
// proxy.
type fillImage struct {
	ref      string
	proxy    *faultproxy.Proxy
	baseSize int64  // the base layer's blob size
	baseBlob string // the base layer's digest
}

const fillBaseMiB = 24

func newFillImage(t *testing.T, name string) *fillImage {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, fillBaseMiB<<20) // incompressible: the blob is as big
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	base := ti.Layer(
		ti.Dir("./"), ti.Dir("etc"), ti.Dir("usr"), ti.Dir("usr/bin"), ti.Dir("data"),
		ti.File("etc/os-release", "ID=test\n"), ti.File("etc/old", "old\n"),
		ti.File("usr/bin/sh", "#!sh\n", ti.Mode(0o755)), ti.File("data/big", string(big)),
	)
	top := ti.Layer(
		ti.Dir("etc"), ti.File("etc/app.conf", "port=80\n", ti.Owner(1000, 1000)), ti.Whiteout("etc/old"),
		ti.Dir("app"), ti.File("app/run", "#!/bin/sh\necho run\n", ti.Mode(0o755)), ti.Hardlink("app/run2", "app/run"),
		ti.Symlink("app/sh", "/usr/bin/sh"),
	)
	reg := testregistry.Start(t)
	orig := reg.Repo(name) + ":v1"
	img := ti.Image(t, [][]byte{base, top}, ti.WithPlatform("linux/amd64"))
	ti.Push(t, img, orig)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	baseSize, err := ls[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	baseDigest, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(t, reg.Addr)
	return &fillImage{ref: p.Addr + "/" + reg.Prefix() + "/" + name + ":v1", proxy: p, baseSize: baseSize,
		baseBlob: baseDigest.String()}
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
	before := blobBytesSent(fi.proxy)
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
	if sent := blobBytesSent(fi.proxy) - before; sent >= fi.baseSize {
		t.Fatalf("the top layer's files answered only after %d blob bytes were sent (the base layer has %d)", sent, fi.baseSize)
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
	fi.proxy.Add(faultproxy.Rule{Path: "/blobs/" + fi.baseBlob, Fault: faultproxy.Status, Status: 503})
	env := cacheEnv(t)
	dir := mountDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	cmd := ocifsCommand(ctx, t, env, "mount", "--foreground", "--lazy", "--retries", "1", fi.ref, dir)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitMounted(t, dir, &stderr)
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
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "retrying"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not say why:\n%s", stderr.String())
		}
	}
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
