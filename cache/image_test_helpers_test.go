package cache

import (
	"bytes"
	"compress/gzip"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// testLayer is a layer blob with a known compression and diffID, made from
// a fixture tar stream.
type testLayer struct {
	blob, tar []byte
	mt        types.MediaType
	diff      v1.Hash // if set, the diffID (tar is then not kept)
}

var _ v1.Layer = (*testLayer)(nil)

func (l *testLayer) Digest() (v1.Hash, error) { return sha256Hash(l.blob), nil }
func (l *testLayer) DiffID() (v1.Hash, error) {
	if l.diff != (v1.Hash{}) {
		return l.diff, nil
	}
	return sha256Hash(l.tar), nil
}
func (l *testLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *testLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tar)), nil
}
func (l *testLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *testLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *testLayer) digest() v1.Hash                     { h, _ := l.Digest(); return h }
func (l *testLayer) diffID() v1.Hash                     { h, _ := l.DiffID(); return h }

func gzipLayer(t testing.TB, tarb []byte) *testLayer {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(tarb)
	must(t, zw.Close())
	return &testLayer{blob: buf.Bytes(), tar: tarb, mt: types.OCILayer}
}

func zstdLayer(t testing.TB, tarb []byte) *testLayer {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	must(t, err)
	zw.Write(tarb)
	must(t, zw.Close())
	return &testLayer{blob: buf.Bytes(), tar: tarb, mt: types.OCILayerZStd}
}

func plainLayer(tarb []byte) *testLayer {
	return &testLayer{blob: tarb, tar: tarb, mt: types.OCIUncompressedLayer}
}

// imageOf builds an OCI image of the layers for platform (os/arch[/variant]).
func imageOf(t testing.TB, platform string, layers ...*testLayer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: l.mt})
		must(t, err)
	}
	cf, err := img.ConfigFile()
	must(t, err)
	p, err := ParsePlatform(platform)
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	return img
}

// threeLayers is an image with a gzip, a zstd and an uncompressed layer.
func threeLayers(t testing.TB) (v1.Image, []*testLayer) {
	ls := []*testLayer{
		gzipLayer(t, ti.Layer(ti.Dir("etc/"), ti.File("etc/hostname", "gzip-host\n"), ti.File("bin/sh", strings.Repeat("ELF", 40000), ti.Mode(0o755)))),
		zstdLayer(t, ti.Layer(ti.File("etc/hostname", "zstd-host\n"), ti.Whiteout("bin/sh"), ti.Symlink("bin/sh", "busybox"))),
		plainLayer(ti.Layer(ti.File("etc/motd", "plain\n"), ti.Hardlink("etc/motd2", "etc/motd"))),
	}
	return imageOf(t, "linux/amd64", ls...), ls
}

// startRegistry serves go-containerregistry's in-process registry on a
// loopback port and returns its host:port.
func startRegistry(t testing.TB) (string, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), srv
}

func push(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	must(t, err)
	must(t, remote.Write(r, img))
	d, err := img.Digest()
	must(t, err)
	return d
}

func pushIndex(t testing.TB, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref)
	must(t, err)
	must(t, remote.WriteIndex(r, idx))
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	return openStoreMode(t, dir, "")
}

// openStoreMode opens a store in mode ("": DefaultMode) at dir (""; a new
// temp directory).
func openStoreMode(t testing.TB, dir string, mode Mode) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, Options{Mode: mode})
	must(t, err)
	return s
}

// bothModes runs f as a subtest in each mode.
func bothModes(t *testing.T, f func(t *testing.T, mode Mode)) {
	for _, m := range []Mode{ModeCompact, ModeUnpacked} {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}
