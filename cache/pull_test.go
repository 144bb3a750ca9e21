package cache

import (
	"bytes"
	"context"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/ocifs/ocifs/overlay"
)

// checkImageAgainst compares a pulled image with the layers it was built
// from: layer metadata, indexes (names, content read via ReadLayerAt).
func checkImageAgainst(t *testing.T, img *Image, layers []*testLayer) {
	t.Helper()
	if len(img.Layers) != len(layers) {
		t.Fatalf("image has %d layers, want %d", len(img.Layers), len(layers))
	}
	idxs, err := img.Indexes(context.Background())
	must(t, err)
	for i, tl := range layers {
		l := img.Layers[i]
		if l.Digest != tl.digest() || l.DiffID != tl.diffID() || l.Size != int64(len(tl.blob)) ||
			l.UncompressedSize != int64(len(tl.tar)) || l.MediaType != tl.mt {
			t.Errorf("layer %d = %+v, want digest %s diffID %s sizes %d/%d %s", i, l, tl.digest(), tl.diffID(), len(tl.blob), len(tl.tar), tl.mt)
		}
		want := scanOf(t, tl.tar)
		if l.Entries != len(want.Layer.Entries) || l.Whiteouts != want.Whiteouts {
			t.Errorf("layer %d: %d entries %d whiteouts, want %d %d", i, l.Entries, l.Whiteouts, len(want.Layer.Entries), want.Whiteouts)
		}
		checkIndexReads(t, img, i, idxs[i], tl.tar)
	}
}

// checkIndexReads reads every regular file through ReadLayerAt and
// compares it with the fixture tar.
func checkIndexReads(t *testing.T, img *Image, i int, idx *overlay.Layer, tarb []byte) {
	t.Helper()
	want := scanOf(t, tarb)
	if len(idx.Entries) != len(want.Layer.Entries) {
		t.Fatalf("layer %d index has %d entries, want %d", i, len(idx.Entries), len(want.Layer.Entries))
	}
	for j, e := range idx.Entries {
		if e.Name != want.Layer.Entries[j].Name || e.Offset != want.Layer.Entries[j].Offset {
			t.Errorf("layer %d entry %d = %q@%d, want %q@%d", i, j, e.Name, e.Offset, want.Layer.Entries[j].Name, want.Layer.Entries[j].Offset)
		}
		if e.Type != overlay.TypeRegular {
			continue
		}
		buf := make([]byte, e.Size)
		if n, err := img.ReadLayerAt(i, buf, e.Offset); int64(n) != e.Size {
			t.Fatalf("ReadLayerAt(%d, %d bytes, %d) = %d, %v", i, e.Size, e.Offset, n, err)
		}
		if !bytes.Equal(buf, tarb[e.Offset:e.Offset+e.Size]) {
			t.Errorf("layer %d %s: bytes differ", i, e.Name)
		}
	}
}

// checkLayout reads the store with go-containerregistry's layout package
// and validates the entry for ref: digests, diffIDs, sizes, config.
func checkLayout(t *testing.T, dir, ref string) {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(dir)
	must(t, err)
	im, err := ii.IndexManifest()
	must(t, err)
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] != ref {
			continue
		}
		img, err := ii.Image(d.Digest)
		must(t, err)
		// validate.Image's deep layer check only reads gzip; check
		// manifest and config with it, and every layer's digest and
		// diffID through the layout's own (gzip, zstd, plain) readers.
		if err := validate.Image(img, validate.Fast); err != nil {
			t.Fatalf("validate.Image(%s): %v", ref, err)
		}
		checkLayoutLayers(t, img)
		return
	}
	t.Fatalf("no index.json entry named %q: %+v", ref, im.Manifests)
}

func TestPullThreeCompressions(t *testing.T) { bothModes(t, testPullThreeCompressions) }

func testPullThreeCompressions(t *testing.T, mode Mode) {
	host, _ := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/three:v1"
	digest := push(t, ref, img)
	s := openStoreMode(t, "", mode)
	var mu sync.Mutex
	states := map[int][]State{}
	got, err := s.Pull(context.Background(), ref, PullOptions{Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if st := states[p.Layer]; len(st) == 0 || st[len(st)-1] != p.State {
			states[p.Layer] = append(st, p.State)
		}
	}})
	must(t, err)
	defer got.Close()
	if got.Digest != digest || got.Ref != ref || got.Platform.Architecture != "amd64" {
		t.Errorf("image %s %s %+v, want %s %s amd64", got.Ref, got.Digest, got.Platform, ref, digest)
	}
	if got.Stats.LayersFetched != 3 || got.Stats.LayersIndexed != 3 {
		t.Errorf("stats = %+v, want 3 fetched and indexed", got.Stats)
	}
	checkImageAgainst(t, got, layers)
	checkLayout(t, s.Dir(), ref)
	for i := range layers {
		if st := states[i]; len(st) != 3 || st[0] != StateWaiting || st[1] != StateFetching || st[2] != StateDone {
			t.Errorf("layer %d progress states = %v, want waiting fetching done", i, st)
		}
	}
	// The uncompressed layer is served from its blob: no unpacked copy.
	if exists(s.unpackedPath(layers[2].diffID())) {
		t.Error("an unpacked copy of the uncompressed layer exists")
	}
	wantKinds := []ContentKind{ContentUnpacked, ContentUnpacked, ContentBlob}
	if mode == ModeCompact {
		wantKinds = []ContentKind{ContentGzip, ContentZstd, ContentBlob}
	}
	for i, l := range layers[:2] {
		b, err := os.ReadFile(s.unpackedPath(l.diffID()))
		if mode == ModeUnpacked && (err != nil || !bytes.Equal(b, l.tar)) {
			t.Errorf("unpacked copy of %s: %v", l.digest(), err)
		}
		if mode == ModeCompact && err == nil {
			t.Errorf("compact mode kept an unpacked copy of %s", l.digest())
		}
		if !exists(s.seekPath(l.digest())) {
			t.Errorf("no seek index for %s", l.digest())
		}
		if _, ok := got.LayerFile(i); ok != (mode == ModeUnpacked) {
			t.Errorf("layer %d: LayerFile ok = %v in %s mode", i, ok, mode)
		}
	}
	for i, k := range wantKinds {
		if got.Layers[i].Content != k {
			t.Errorf("layer %d served as %s, want %s", i, got.Layers[i].Content, k)
		}
	}
	again, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer again.Close()
	if again.Stats != (PullStats{}) {
		t.Errorf("second pull did work: %+v", again.Stats)
	}
	checkNoTemps(t, s)
}

func checkNoTemps(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), tmpDir))
	must(t, err)
	for _, e := range ents {
		t.Errorf("temp file left behind: %s", e.Name())
	}
}

func TestGetWorksOffline(t *testing.T) {
	host, srv := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/offline:v1"
	push(t, ref, img)
	s := openStore(t, "")
	first, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	first.Close()
	srv.Close()
	got, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err == nil {
		t.Fatal("Pull with the registry gone succeeded")
	}
}

func TestPullMultiPlatform(t *testing.T) {
	host, _ := startRegistry(t)
	amd := imageOf(t, "linux/amd64", gzipLayer(t, ti.Layer(ti.File("arch", "amd64"))))
	arm := imageOf(t, "linux/arm64/v8", gzipLayer(t, ti.Layer(ti.File("arch", "arm64"))))
	att := imageOf(t, "unknown/unknown", plainLayer(ti.Layer(ti.File("sbom.json", "{}"))))
	idx := indexOf(t,
		addendum(amd, &v1.Platform{OS: "linux", Architecture: "amd64"}, nil),
		addendum(att, &v1.Platform{OS: "unknown", Architecture: "unknown"}, map[string]string{
			"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "sha256:0"}),
		addendum(arm, &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, nil),
	)
	ref := host + "/test/multi:v1"
	pushIndex(t, ref, idx)
	s := openStore(t, "")
	for _, tc := range []struct {
		platform, want string
	}{{"linux/arm64", "arm64"}, {"linux/arm64/v8", "arm64"}, {"linux/amd64", "amd64"}} {
		p, _ := ParsePlatform(tc.platform)
		img, err := s.Pull(context.Background(), ref, PullOptions{Platform: p})
		must(t, err)
		idxs, err := img.Indexes(context.Background())
		must(t, err)
		buf := make([]byte, 5)
		n, _ := img.ReadLayerAt(0, buf, idxs[0].Entries[0].Offset)
		if string(buf[:n]) != tc.want || img.Platform.Architecture != tc.want {
			t.Errorf("platform %s: got content %q, image platform %+v", tc.platform, buf[:n], img.Platform)
		}
		img.Close()
	}
	p, _ := ParsePlatform("linux/s390x")
	_, err := s.Pull(context.Background(), ref, PullOptions{Platform: p})
	if !isErr(err, ErrNoPlatform) || !contains(err, "available: linux/amd64, linux/arm64") || contains(err, "unknown") {
		t.Fatalf("s390x: err = %v, want ErrNoPlatform listing amd64 and arm64 only", err)
	}
	im, err := s.readIndex()
	must(t, err)
	if n := len(im.Manifests); n != 2 {
		t.Errorf("index.json has %d entries, want 2 (arm64 and amd64 under one ref)", n)
	}
	checkLayout(t, s.Dir(), ref)
}

func checkLayoutLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	for i, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		must(t, err)
		got, _, err := v1.SHA256(rc)
		rc.Close()
		must(t, err)
		if got != d {
			t.Errorf("layout layer %d: blob hashes to %s, want %s", i, got, d)
		}
		rc, err = l.Uncompressed()
		must(t, err)
		got, _, err = v1.SHA256(rc)
		rc.Close()
		must(t, err)
		if got != cf.RootFS.DiffIDs[i] {
			t.Errorf("layout layer %d: uncompressed hashes to %s, config diffID %s", i, got, cf.RootFS.DiffIDs[i])
		}
	}
}

// scanOf indexes a fixture tar with the scanner alone, as the oracle of
// what a pulled layer's index must hold.
func scanOf(t *testing.T, tarb []byte) *tarindex.Result {
	t.Helper()
	res, err := tarindex.Scan(bytes.NewReader(tarb))
	must(t, err)
	return res
}
