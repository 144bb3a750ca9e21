package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ocifs/ocifs/internal/faultproxy"
)

// newLazyZstdImage is newLazyImage plus the image's zstd:chunked
// conversion ('ocifs convert --format zstd:chunked', pushed past the
// proxy, with small files grouped in frames of at least 64 KiB of data:
// --min-chunk-size); it returns the conversion's reference through the
// proxy.
func newLazyZstdImage(t *testing.T, name string) (*lazyImage, string) {
	t.Helper()
	li := newLazyImage(t, name, lazyLayers())
	direct := strings.TrimSuffix(li.ref, ":v1") + ":zstd"
	mustOcifs(t, li.origEnv, "convert", "--format", "zstd:chunked", "--chunk-size", "262144", "--min-chunk-size", "65536", li.ref, direct)
	requireZstdChunked(t, direct)
	return li, strings.TrimSuffix(li.conv, ":estargz") + ":zstd"
}

// requireZstdChunked checks that every layer of ref is zstd with the
// zstd:chunked TOC annotations, so that the tests below read zstd:chunked,
// not eStargz or a plain pull.
func requireZstdChunked(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.MediaType != types.OCILayerZStd || l.Annotations["io.containers.zstd-chunked.manifest-checksum"] == "" ||
			l.Annotations["io.containers.zstd-chunked.manifest-position"] == "" {
			t.Fatalf("layer %d of %s is %s with annotations %v, want zstd:chunked", i, ref, l.MediaType, l.Annotations)
		}
	}
}

// TestLazyZstdChunked: a lazy mount of the zstd:chunked conversion shows
// exactly what a mount of the pulled original shows, before and after the
// background fetch; a small read fetches little; a chunk corrupted on the
// way reads as EIO, never as wrong bytes, and reads right once the
// registry serves the right bytes again. One fixture for all, to keep it
// short.
func TestLazyZstdChunked(t *testing.T) {
	requireFUSEMount(t)
	li, zconv := newLazyZstdImage(t, "lazy-zstd")
	orig := mountImageEnv(t, li.origEnv, li.ref)
	want := walkMount(t, orig)

	t.Run("matches-pull", func(t *testing.T) {
		env := cacheEnv(t)
		before := blobBytesSent(li.proxy)
		dir := mountImageEnv(t, env, zconv, "--lazy")
		if n := blobBytesSent(li.proxy) - before; n > 256<<10 {
			t.Fatalf("a lazy mount fetched %d blob bytes before any read (TOCs and small layers expected)", n)
		}
		requireSmallRead(t, li.proxy, dir, orig, "data/small/f07")
		requireNoDiff(t, "lazy mount of the zstd:chunked conversion (a) vs mount of the original (b)", walkMount(t, dir), want, exact)

		env2 := cacheEnv(t)
		dir = mountImageEnv(t, env2, zconv, "--lazy", "--background-fetch")
		waitRecorded(t, env2, zconv)
		requireNoDiff(t, "lazy zstd:chunked mount after the background fetch (a) vs original (b)", walkMount(t, dir), want, exact)
		before = blobBytesSent(li.proxy)
		requireNoDiff(t, "ordinary mount of the fetched conversion (a) vs original (b)", walkMount(t, mountImageEnv(t, env2, zconv)), want, exact)
		if n := blobBytesSent(li.proxy) - before; n != 0 {
			t.Fatalf("mounting the fetched image sent %d more blob bytes", n)
		}
		mustOcifs(t, env2, "cache", "verify")
	})

	t.Run("corrupt-chunk", func(t *testing.T) {
		env := cacheEnv(t)
		dir := mountImageEnv(t, env, zconv, "--lazy", "--lazy-timeout", "5s", "--retries", "1")
		// blob2 is random: its zstd frames are raw blocks, so the flipped
		// byte (the thousandth of each blob response, inside the frame of
		// blob2's first chunk) decodes to wrong file bytes unless the
		// chunk digest stops it.
		li.proxy.Add(faultproxy.Rule{Path: "/blobs/", Fault: faultproxy.Corrupt, After: 1000})
		b, err := os.ReadFile(filepath.Join(dir, "data/blob2"))
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("reading a corrupted chunk: %d bytes, %v; want EIO", len(b), err)
		}
		if li.proxy.Applied(faultproxy.Corrupt) == 0 {
			t.Fatal("the proxy corrupted no response: the read did not fetch")
		}
		li.proxy.Reset()
		got, err := os.ReadFile(filepath.Join(dir, "data/blob2"))
		if err != nil {
			t.Fatalf("reading once the registry is right: %v", err)
		}
		wantB, err := os.ReadFile(filepath.Join(orig, "data/blob2"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantB) {
			t.Fatalf("data/blob2 reads %d bytes that differ from the original's %d", len(got), len(wantB))
		}
	})
}

// requireSmallRead reads one small file of a fresh lazy mount: its bytes
// are the original's and the read fetched at most a fetch window and a
// chunk (the image's blobs are several times that).
func requireSmallRead(t *testing.T, p *faultproxy.Proxy, dir, orig, file string) {
	t.Helper()
	const most = 512<<10 + 256<<10 // cache.DefaultFetchWindow + the chunk size
	before := blobBytesSent(p)
	got, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	n := blobBytesSent(p) - before
	t.Logf("reading %s (%d bytes) fetched %d blob bytes", file, len(got), n)
	if n == 0 || n > most {
		t.Fatalf("reading %s fetched %d blob bytes, want 1 to %d", file, n, most)
	}
	want, err := os.ReadFile(filepath.Join(orig, file))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s reads %q, the original %q (%v)", file, got, want, err)
	}
}

// TestLazyZstdAcceptance is TestLazyAcceptance on the zstd:chunked
// conversion (same gate: OCIFS_LAZY_BENCH_MB).
func TestLazyZstdAcceptance(t *testing.T) { lazyAcceptance(t, "zstd:chunked") }
