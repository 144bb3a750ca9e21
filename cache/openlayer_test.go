package cache

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/overlay"
)

// readyLog records a pull's Resolved and LayerReady calls in order;
// Resolved is logged as -1.
type readyLog struct {
	mu     sync.Mutex // guards events, m, cf
	events []int
	m      *v1.Manifest
	cf     *v1.ConfigFile
	ready  chan int // every LayerReady position, if set
}

func (rl *readyLog) options(po PullOptions) PullOptions {
	po.Resolved = func(_ v1.Hash, m *v1.Manifest, cf *v1.ConfigFile) {
		rl.mu.Lock()
		defer rl.mu.Unlock()
		rl.events = append(rl.events, -1)
		rl.m, rl.cf = m, cf
	}
	po.LayerReady = func(i int) {
		rl.mu.Lock()
		rl.events = append(rl.events, i)
		rl.mu.Unlock()
		if rl.ready != nil {
			rl.ready <- i
		}
	}
	return po
}

func (rl *readyLog) got() []int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return slices.Clone(rl.events)
}

// layer returns what OpenLayer needs for position i.
func (rl *readyLog) layer(i int) (v1.Descriptor, v1.Hash) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.m.Layers[i], rl.cf.RootFS.DiffIDs[i]
}

// pullLogged pulls ref with po and the log's callbacks, and returns
// what they saw.
func pullLogged(t *testing.T, s *Store, ref string, po PullOptions) []int {
	t.Helper()
	var rl readyLog
	img, err := s.Pull(context.Background(), ref, rl.options(po))
	must(t, err)
	img.Close()
	return rl.got()
}

// TestLayerReadyOrder checks that Resolved comes first and that every
// position is reported once: top first with TopFirst, in manifest order
// without, for cached layers too, a shared blob's positions together
// (highest first), and nothing when Get finds the image complete.
func TestLayerReadyOrder(t *testing.T) {
	host, _ := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/ready:v1"
	push(t, ref, img)
	shared := host + "/test/shared:v1"
	push(t, shared, imageOf(t, "linux/amd64", layers[0], gzipLayer(t, ti.Layer(ti.File("mid", "x"))), layers[0]))
	s := openStore(t, "")
	top := PullOptions{TopFirst: true, Jobs: 1}
	for _, tc := range []struct {
		what, ref string
		po        PullOptions
		want      []int
	}{
		{"fetched, top first", ref, top, []int{-1, 2, 1, 0}},
		{"cached, top first", ref, top, []int{-1, 2, 1, 0}},
		{"cached, manifest order", ref, PullOptions{Jobs: 1}, []int{-1, 0, 1, 2}},
		{"shared blob, top first", shared, top, []int{-1, 2, 0, 1}},
		{"shared blob, manifest order", shared, PullOptions{Jobs: 1}, []int{-1, 2, 0, 1}},
	} {
		if got := pullLogged(t, s, tc.ref, tc.po); !slices.Equal(got, tc.want) {
			t.Errorf("%s: calls %v, want %v (-1: Resolved)", tc.what, got, tc.want)
		}
	}
	var rl readyLog
	got, err := s.Get(context.Background(), ref, rl.options(PullOptions{}))
	must(t, err)
	got.Close()
	if ev := rl.got(); len(ev) != 0 {
		t.Errorf("Get of a complete image called back: %v", ev)
	}
	// Parallel jobs: each position still exactly once.
	events := pullLogged(t, s, shared, PullOptions{})
	slices.Sort(events)
	if !slices.Equal(events, []int{-1, 0, 1, 2}) {
		t.Errorf("parallel pull: calls %v, want Resolved and each position once", events)
	}
}

// holdBlobs makes the registry hold GET requests of the layers' blobs
// until release is closed; held receives a value as each one arrives.
func holdBlobs(t *testing.T, reg *faultyRegistry, ls ...*testLayer) (held <-chan struct{}, release func()) {
	h := make(chan struct{}, 8)
	rel := make(chan struct{})
	reg.setFault(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		for _, l := range ls {
			if strings.HasSuffix(r.URL.Path, l.digest().String()) {
				h <- struct{}{}
				<-rel
			}
		}
		return false
	})
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return h, release
}

// openedLayer is a layer opened with OpenLayer and what it read then.
type openedLayer struct {
	idx *overlay.Layer
	lc  *LayerContent
	tar []byte
}

func openReady(t *testing.T, s *Store, rl *readyLog, i int, want *testLayer) openedLayer {
	t.Helper()
	desc, diffID := rl.layer(i)
	idx, lc, err := s.OpenLayer(context.Background(), desc, diffID)
	must(t, err)
	ol := openedLayer{idx: idx, lc: lc, tar: readStream(t, lc, lc.Layer.UncompressedSize)}
	if string(ol.tar) != string(want.tar) {
		t.Errorf("layer %d read through OpenLayer differs from its tar", i)
	}
	if len(idx.Entries) != len(scanOf(t, want.tar).Layer.Entries) {
		t.Errorf("layer %d: OpenLayer's index has %d entries", i, len(idx.Entries))
	}
	return ol
}

// readStream reads size bytes of r from 0.
func readStream(t *testing.T, r io.ReaderAt, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	if n, err := r.ReadAt(b, 0); int64(n) != size {
		t.Fatalf("reading %d bytes: %d, %v", size, n, err)
	}
	return b
}

// waitReady returns the positions reported until want of them were.
func waitReady(t *testing.T, ready <-chan int, want int) []int {
	t.Helper()
	var got []int
	for len(got) < want {
		select {
		case i := <-ready:
			got = append(got, i)
		case <-time.After(30 * time.Second):
			t.Fatalf("only layers %v reported ready", got)
		}
	}
	slices.Sort(got)
	return got
}

func TestOpenLayerDuringPull(t *testing.T) { bothModes(t, testOpenLayerDuringPull) }

// testOpenLayerDuringPull opens the top layers while the bottom one is
// held back, runs Prune meanwhile, and compares what OpenLayer gave with
// the Image the pull returns.
func testOpenLayerDuringPull(t *testing.T, mode Mode) {
	host, reg := startFaultyRegistry(t)
	_, three := threeLayers(t)
	layers := []*testLayer{three[2], three[0], three[1]} // plain at the bottom, gzip, zstd
	ref := host + "/test/early:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	held, release := holdBlobs(t, reg, layers[0])
	s := openStoreMode(t, "", mode)
	ctx := context.Background()
	rl := &readyLog{ready: make(chan int, 3)}
	type result struct {
		img *Image
		err error
	}
	pulled := make(chan result, 1)
	go func() {
		img, err := s.Pull(ctx, ref, rl.options(PullOptions{TopFirst: true}))
		pulled <- result{img, err}
	}()
	if got := waitReady(t, rl.ready, 2); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("layers ready while the bottom one is held: %v, want 1 2", got)
	}
	<-held
	opened := map[int]openedLayer{}
	for _, i := range []int{1, 2} {
		opened[i] = openReady(t, s, rl, i, layers[i])
		defer opened[i].lc.Close()
	}
	pruned := make(chan error, 1)
	go func() {
		rep, err := s.Prune(ctx, PruneOptions{})
		if err == nil && len(rep.Removed) > 0 {
			t.Errorf("prune during the pull removed %v", rep.Removed)
		}
		pruned <- err
	}()
	select {
	case err := <-pruned:
		t.Fatalf("prune ran during the pull: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	for i, ol := range opened {
		if b := readStream(t, ol.lc, int64(len(ol.tar))); string(b) != string(ol.tar) {
			t.Errorf("layer %d reads differently while prune waits", i)
		}
	}
	release()
	res := <-pulled
	must(t, res.err)
	defer res.img.Close()
	must(t, <-pruned)
	if ev := rl.got(); ev[0] != -1 || len(ev) != 4 {
		t.Errorf("calls %v, want Resolved then three positions", ev)
	}
	opened[0] = openReady(t, s, rl, 0, layers[0])
	defer opened[0].lc.Close()
	idxs, err := res.img.Indexes(ctx)
	must(t, err)
	for i, ol := range opened {
		if !reflect.DeepEqual(ol.idx, idxs[i]) {
			t.Errorf("layer %d: OpenLayer's index differs from the image's", i)
		}
		if ol.lc.Layer != res.img.Layers[i] {
			t.Errorf("layer %d: OpenLayer says %+v, the image %+v", i, ol.lc.Layer, res.img.Layers[i])
		}
		if b := readStream(t, imageLayer{res.img, i}, int64(len(ol.tar))); string(b) != string(ol.tar) {
			t.Errorf("layer %d: the image reads differently from OpenLayer", i)
		}
		if _, ok := ol.lc.File(); ok != (ol.lc.Layer.Content == ContentBlob || ol.lc.Layer.Content == ContentUnpacked) {
			t.Errorf("layer %d (%s): File ok = %v", i, ol.lc.Layer.Content, ok)
		}
	}
}

// imageLayer reads one layer of an Image.
type imageLayer struct {
	img *Image
	i   int
}

func (l imageLayer) ReadAt(p []byte, off int64) (int, error) { return l.img.ReadLayerAt(l.i, p, off) }

func TestOpenLayerSurvivesFailedPullAndPrune(t *testing.T) {
	bothModes(t, testOpenLayerSurvivesFailedPullAndPrune)
}

// testOpenLayerSurvivesFailedPullAndPrune opens the top layers during a
// pull whose bottom layer then fails: Prune removes their files (nothing
// references them), and what was opened still reads the same.
func testOpenLayerSurvivesFailedPullAndPrune(t *testing.T, mode Mode) {
	host, reg := startFaultyRegistry(t)
	_, three := threeLayers(t)
	layers := []*testLayer{three[2], three[0], three[1]}
	ref := host + "/test/failing:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	bottom := layers[0].digest().String()
	reg.setFault(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, bottom) {
			return false
		}
		w.WriteHeader(http.StatusNotFound)
		return true
	})
	s := openStoreMode(t, "", mode)
	rl := &readyLog{}
	var opened []openedLayer
	po := rl.options(PullOptions{TopFirst: true, Jobs: 1})
	reported := po.LayerReady
	po.LayerReady = func(i int) {
		reported(i)
		opened = append(opened, openReady(t, s, rl, i, layers[i])) // Jobs 1: one call at a time
	}
	if _, err := s.Pull(context.Background(), ref, po); !isErr(err, ErrNotFound) {
		t.Fatalf("pull with the bottom blob missing: %v, want ErrNotFound", err)
	}
	if len(opened) != 2 {
		t.Fatalf("%d layers opened, want the top two", len(opened))
	}
	rep, err := s.Prune(context.Background(), PruneOptions{})
	must(t, err)
	for _, l := range layers[1:] {
		if exists(s.blobPath(l.digest())) || exists(s.indexPath(l.diffID())) {
			t.Errorf("prune after the failed pull kept layer %s (removed %v)", l.digest(), rep.Removed)
		}
	}
	for _, ol := range opened {
		if b := readStream(t, ol.lc, int64(len(ol.tar))); string(b) != string(ol.tar) {
			t.Errorf("layer %s reads differently after prune", ol.lc.Layer.Digest)
		}
		ol.lc.Close()
	}
}

// TestCachedLayerReadyAtOnce checks that a layer found complete is
// reported while another layer of the image is still being fetched.
func TestCachedLayerReadyAtOnce(t *testing.T) {
	host, reg := startFaultyRegistry(t)
	_, layers := threeLayers(t)
	base := host + "/test/base:v1"
	push(t, base, imageOf(t, "linux/amd64", layers[0]))
	s := openStore(t, "")
	pullLogged(t, s, base, PullOptions{})
	top := gzipLayer(t, ti.Layer(ti.File("top", "new")))
	ref := host + "/test/ontop:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers[0], top))
	held, release := holdBlobs(t, reg, top)
	rl := &readyLog{ready: make(chan int, 2)}
	pulled := make(chan error, 1)
	go func() {
		img, err := s.Pull(context.Background(), ref, rl.options(PullOptions{TopFirst: true, Jobs: 2}))
		if err == nil {
			img.Close()
		}
		pulled <- err
	}()
	<-held
	if got := waitReady(t, rl.ready, 1); !slices.Equal(got, []int{0}) {
		t.Errorf("ready while the top layer is held: %v, want 0", got)
	}
	release()
	must(t, <-pulled)
	if got := waitReady(t, rl.ready, 1); !slices.Equal(got, []int{1}) {
		t.Errorf("ready after release: %v, want 1", got)
	}
}

// TestPullPinned: a pull pinned to the manifest an earlier resolve stored
// asks the registry for no manifest and keeps to that image after its tag
// moved; a pin the store cannot serve resolves as usual.
func TestPullPinned(t *testing.T) {
	var manifests atomic.Int64
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/pinned:v1"
	imgA, _ := threeLayers(t)
	push(t, ref, imgA)
	s := openStore(t, "")

	// Resolve only, as ocifs mount does before its server takes over.
	ctx, cancel := context.WithCancel(context.Background())
	var pinned v1.Hash
	_, err := s.Pull(ctx, ref, PullOptions{Resolved: func(d v1.Hash, _ *v1.Manifest, _ *v1.ConfigFile) { pinned = d; cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("pull cancelled once resolved: %v", err)
	}
	push(t, ref, imageOf(t, "linux/amd64", gzipLayer(t, ti.Layer(ti.File("moved", "the tag moved")))))

	before := manifests.Load()
	img, err := s.Pull(context.Background(), ref, PullOptions{Pinned: pinned})
	must(t, err)
	defer img.Close()
	if n := manifests.Load() - before; n != 0 {
		t.Errorf("pinned pull asked the registry for %d manifests, want none", n)
	}
	if img.Digest != pinned || len(img.Layers) != 3 {
		t.Errorf("pinned pull got %s with %d layers, want %s with 3 (the image before the tag moved)", img.Digest, len(img.Layers), pinned)
	}

	// The ref recorded anew, at the moved tag: Get and GetLazy keep to
	// the pin all the same.
	moved0, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	moved0.Close()
	for what, get := range map[string]func() (*Image, error){
		"Get": func() (*Image, error) { return s.Get(context.Background(), ref, PullOptions{Pinned: pinned}) },
		"GetLazy": func() (*Image, error) {
			return s.GetLazy(context.Background(), ref, PullOptions{Pinned: pinned}, LazyOptions{})
		},
	} {
		got, err := get()
		must(t, err)
		if got.Digest != pinned {
			t.Errorf("%s pinned, with the moved image recorded under the ref: got %s, want %s", what, got.Digest, pinned)
		}
		got.Close()
		back, err := s.Pull(context.Background(), ref, PullOptions{}) // the moved one recorded again
		must(t, err)
		back.Close()
	}

	// A pin the store does not have: resolved as usual, to where the tag
	// points now.
	other := openStore(t, "")
	before = manifests.Load()
	moved, err := other.Pull(context.Background(), ref, PullOptions{Pinned: pinned})
	must(t, err)
	defer moved.Close()
	if manifests.Load() == before || len(moved.Layers) != 1 {
		t.Errorf("pull pinned to a manifest the store lacks: %d manifest requests, %d layers; want it resolved again (1 layer)", manifests.Load()-before, len(moved.Layers))
	}
}
