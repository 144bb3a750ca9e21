package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/overlay"
)

// lazyRegistry is the in-process registry behind a switch that makes it
// ignore Range, fail, or corrupt what it sends.
type lazyRegistry struct {
	addr string
	mode atomic.Int32 // one of the reg* values
	hits atomic.Int64 // blob requests with a Range header
	// onRange, if set, is called with each blob request with a Range
	// header before it is answered.
	onRange atomic.Pointer[func()]
}

const (
	regOK = iota
	regNoRange
	regDown
	regCorrupt
)

func startLazyRegistry(t *testing.T) *lazyRegistry {
	t.Helper()
	lr := &lazyRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isBlob := strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Method == http.MethodGet
		if isBlob && r.Header.Get("Range") != "" {
			lr.hits.Add(1)
			if fn := lr.onRange.Load(); fn != nil {
				(*fn)()
			}
		}
		switch m := lr.mode.Load(); {
		case m == regDown && isBlob:
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		case m == regNoRange:
			r.Header.Del("Range")
		case m == regCorrupt && isBlob && r.Header.Get("Range") != "":
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 100 {
				b[len(b)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	lr.addr = strings.TrimPrefix(srv.URL, "http://")
	return lr
}

// lazyFixture pushes an ordinary image (several chunks per big file,
// hardlinks, a whiteout, xattrs) and its eStargz conversion; it returns
// both references and the original's tree dump, from a full pull.
func lazyFixture(t *testing.T, lr *lazyRegistry) (orig, conv string, want []string) {
	t.Helper()
	return lazyFixtureAs(t, lr, FormatEStargz)
}

// lazyFixtureAs is lazyFixture with the conversion in format f.
func lazyFixtureAs(t *testing.T, lr *lazyRegistry, f ConvertFormat) (orig, conv string, want []string) {
	t.Helper()
	return lazyFixtureWith(t, lr, ConvertOptions{ChunkSize: 1 << 20, Format: f})
}

// lazyFixtureWith is lazyFixture converted with opts.
func lazyFixtureWith(t *testing.T, lr *lazyRegistry, opts ConvertOptions) (orig, conv string, want []string) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	var small []ti.Entry
	for i := range 40 {
		small = append(small, ti.File(fmt.Sprintf("etc/small/f%02d", i), smallContent(i)))
	}
	l1 := ti.Layer(append([]ti.Entry{ti.Dir("etc"), ti.Dir("etc/small"), ti.File("big.bin", string(big), ti.Mode(0o600), ti.Owner(7, 8)),
		ti.File("etc/motd", "hello\n", ti.Xattr("user.tag", []byte("blue"))), ti.Hardlink("etc/motd.link", "etc/motd"),
		ti.Symlink("lib", "usr/lib"), ti.File("gone", "x")}, small...)...)
	l2 := ti.Layer(ti.Whiteout("gone"), ti.File("etc/motd", "new motd\n"), ti.File("empty", ""))
	orig = lr.addr + "/lazy/orig:v1"
	push(t, orig, imageOf(t, "linux/amd64", gzipLayer(t, l1), gzipLayer(t, l2)))
	s := openStore(t, "")
	img, err := s.Pull(context.Background(), orig, PullOptions{})
	must(t, err)
	defer img.Close()
	want = dumpImage(t, img)
	conv = lr.addr + "/lazy/conv:v1"
	_, err = s.Convert(context.Background(), img, conv, opts)
	must(t, err)
	return orig, conv, want
}

// smallContent is what lazyFixtureAs writes in etc/small/fNN.
func smallContent(i int) string { return strings.Repeat(fmt.Sprint(i), 100+i*37) }

// getLazyQuick opens ref lazily from a new store that retries little
// (2 attempts, 50 ms apart) with reads bounded to 2 s (lo's other fields
// kept), for the fault tests; the image is closed at the test's end.
func getLazyQuick(t *testing.T, ref string, lo LazyOptions) *Image {
	t.Helper()
	s, err := Open(t.TempDir(), Options{Network: Network{Attempts: 2, Backoff: 50 * time.Millisecond}})
	must(t, err)
	lo.ReadTimeout = 2 * time.Second
	img := getLazy(t, s, ref, lo)
	t.Cleanup(func() { img.Close() })
	return img
}

// getLazy opens ref lazily; the caller closes the image.
func getLazy(t *testing.T, s *Store, ref string, lo LazyOptions) *Image {
	t.Helper()
	img, err := s.GetLazy(context.Background(), ref, PullOptions{}, lo)
	must(t, err)
	return img
}

// checkSmallRead reads etc/small/fNN of a lazy image and checks that it
// fetched about one window, not the whole layer.
func checkSmallRead(t *testing.T, img *Image, i int) {
	t.Helper()
	p0 := img.LazyProgress()
	p := fmt.Sprintf("etc/small/f%02d", i)
	b, err := readPath(img, p)
	must(t, err)
	if string(b) != smallContent(i) {
		t.Fatalf("%s reads %q", p, b)
	}
	p1 := img.LazyProgress()
	if got := p1.Fetched - p0.Fetched; got <= 0 || got > DefaultFetchWindow+(1<<20) || p1.Present >= p1.Total {
		t.Fatalf("reading a small file fetched %d bytes (present %d of %d)", got, p1.Present, p1.Total)
	}
}

// checkFetchAll fetches the rest of a lazy image and checks that it is
// complete, still shows want, and is stored: Lookup finds it, not lazy,
// with the same tree.
func checkFetchAll(t *testing.T, s *Store, img *Image, what string, want []string) {
	t.Helper()
	must(t, img.FetchAll(context.Background()))
	if p := img.LazyProgress(); p.Complete != p.Layers || p.Present != p.Total {
		t.Fatalf("after FetchAll: %+v", p)
	}
	sameDump(t, what+" after the background fetch", dumpImage(t, img), want)
	full, err := s.Lookup(img.Ref, HostPlatform())
	must(t, err)
	defer full.Close()
	if full.Lazy() {
		t.Fatal("the stored image is still lazy")
	}
	sameDump(t, what+" once stored", dumpImage(t, full), want)
}

// testLazyWithoutRange: a registry that ignores Range gets one notice
// and the conversion to f is pulled whole, with the original's tree.
func testLazyWithoutRange(t *testing.T, f ConvertFormat) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixtureAs(t, lr, f)
	var logs bytes.Buffer
	s, err := Open(t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	lr.mode.Store(regNoRange)
	img := getLazy(t, s, conv, LazyOptions{})
	defer img.Close()
	if img.Lazy() {
		t.Fatal("read lazily from a registry without Range support")
	}
	sameDump(t, "the image pulled without Range", dumpImage(t, img), want)
	if n := strings.Count(logs.String(), "does not serve Range"); n != 1 {
		t.Fatalf("%d notices about Range, want 1:\n%s", n, logs.String())
	}
}

// dumpImage lists every path of the image's merged tree with its
// metadata and a hash of its content.
func dumpImage(t *testing.T, img *Image) []string {
	t.Helper()
	tree, err := img.Tree(context.Background(), 0)
	must(t, err)
	var out []string
	err = tree.Walk(func(p string, n *overlay.Node) error {
		sec, nsec := n.MTimeUnix()
		maj, mnr := n.Dev()
		line := fmt.Sprintf("%s %v %o %d:%d n%d s%d t%d.%d %q %d,%d %v", p, n.Type(), n.Mode(), n.UID(), n.GID(), n.Nlink(), n.Size(), sec, nsec, n.Target(), maj, mnr, n.Xattrs())
		if n.Type() == overlay.TypeRegular {
			b := make([]byte, n.Size())
			if _, err := n.ReadAt(img, b, 0); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	})
	must(t, err)
	return out
}

func sameDump(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s differs from the pulled original:\ngot:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// readPath reads a file of the image's merged tree.
func readPath(img *Image, p string) ([]byte, error) {
	tree, err := img.Tree(context.Background(), 0)
	if err != nil {
		return nil, err
	}
	n := tree.Get(p)
	if n == nil {
		return nil, fmt.Errorf("%s: not in the tree", p)
	}
	b := make([]byte, n.Size())
	_, err = n.ReadAt(img, b, 0)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return b, err
}

func TestLazyEStargzMatchesPull(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixture(t, lr)
	s := openStore(t, "")
	img := getLazy(t, s, conv, LazyOptions{})
	defer img.Close()
	if !img.Lazy() {
		t.Fatal("the converted image is not read lazily")
	}
	for _, l := range img.Layers {
		if l.Content != ContentLazy {
			t.Fatalf("layer %s served as %s", l.Digest, l.Content)
		}
	}
	// doc.go: one Range request for the footer, one for the TOC.
	if p := img.LazyProgress(); p.Requests != 2*int64(len(img.Layers)) {
		t.Errorf("opening sent %d Range requests for %d layers, want two each", p.Requests, len(img.Layers))
	}
	checkSmallRead(t, img, 3)
	sameDump(t, "the lazy mount", dumpImage(t, img), want)
	checkFetchAll(t, s, img, "the lazy eStargz image", want)
}

func TestLazyResumesFromCache(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, _ := lazyFixture(t, lr)
	s := openStore(t, "")
	img := getLazy(t, s, conv, LazyOptions{})
	_, err := readPath(img, "big.bin")
	must(t, err)
	img.Close()
	before := lr.hits.Load()
	img = getLazy(t, s, conv, LazyOptions{})
	defer img.Close()
	if n := lr.hits.Load() - before; n != 0 {
		t.Fatalf("reopening sent %d Range requests; the TOCs are kept", n)
	}
	_, err = readPath(img, "big.bin")
	must(t, err)
	if n := lr.hits.Load() - before; n != 0 {
		t.Fatalf("reading big.bin again after reopening sent %d Range requests", n)
	}
}

func TestLazyWithoutRangeFallsBack(t *testing.T) { testLazyWithoutRange(t, FormatEStargz) }

func TestLazyRegistryGoneThenBack(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, _ := lazyFixture(t, lr)
	img := getLazyQuick(t, conv, LazyOptions{})
	lr.mode.Store(regDown)
	start := time.Now()
	if _, err := readPath(img, "etc/small/f07"); err == nil {
		t.Fatal("read succeeded with the registry down")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing read took %v", d)
	}
	lr.mode.Store(regCorrupt)
	if _, err := readPath(img, "big.bin"); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading corrupted chunks: %v, want a digest mismatch", err)
	}
	lr.mode.Store(regOK)
	b, err := readPath(img, "etc/small/f07")
	must(t, err)
	if string(b) != smallContent(7) {
		t.Fatalf("etc/small/f07 reads %q", b)
	}
	_, err = readPath(img, "big.bin")
	must(t, err)
}

func TestLazyBadTOCAnnotationPullsWhole(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixture(t, lr)
	s := openStore(t, "")
	img, err := s.Pull(context.Background(), conv, PullOptions{})
	must(t, err)
	m := *img.Manifest
	m.Layers = append(m.Layers[:0:0], m.Layers...)
	m.Layers[0].Annotations = map[string]string{AnnotationTOCDigest: "sha256:" + strings.Repeat("0", 64)}
	img.Close()
	bad := lr.addr + "/lazy/conv:bad"
	pushManifest(t, bad, &m)
	img2 := getLazy(t, openStore(t, ""), bad, LazyOptions{})
	defer img2.Close()
	if img2.Layers[0].Content == ContentLazy {
		t.Fatal("a layer whose TOC does not match its annotation is read lazily")
	}
	sameDump(t, "an image with a wrong TOC annotation", dumpImage(t, img2), want)
}

// rawManifest is a manifest to push as it is.
type rawManifest struct{ b []byte }

func (r rawManifest) RawManifest() ([]byte, error) { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

func pushManifest(t *testing.T, ref string, m *v1.Manifest) {
	t.Helper()
	b, err := json.Marshal(m)
	must(t, err)
	r, err := name.ParseReference(ref)
	must(t, err)
	must(t, remote.Put(r, rawManifest{b}))
}

// TestPruneLazyPartials checks that prune keeps the partial blob of a
// lazily read layer while an image has it open, removes it once nobody
// does, and that Usage counts what it holds.
func TestPruneLazyPartials(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, _ := lazyFixture(t, lr)
	s := openStore(t, "")
	ctx := context.Background()
	img := getLazy(t, s, conv, LazyOptions{})
	_, err := readPath(img, "big.bin")
	must(t, err)
	if u := s.Usage(); u.Lazy == 0 {
		t.Error("Usage does not count the partial blob")
	}
	partials := func() []string {
		m, _ := filepath.Glob(filepath.Join(s.Dir(), lazyDir, "sha256", "*.blob"))
		return m
	}
	if len(partials()) == 0 {
		t.Fatal("no partial blob after a lazy read")
	}
	_, err = s.Prune(ctx, PruneOptions{})
	must(t, err)
	if len(partials()) == 0 {
		t.Fatal("prune removed a partial blob in use")
	}
	if _, err := readPath(img, "big.bin"); err != nil {
		t.Fatalf("reading after prune: %v", err)
	}
	// Nothing the open image will be recorded with may go either: its
	// manifest and config (index.json does not reference them until every
	// layer is complete), nor a layer completed meanwhile. Prune once
	// removed them, and the image was recorded without its config.
	for _, d := range []v1.Hash{img.Digest, img.Manifest.Config.Digest} {
		if !exists(s.blobPath(d)) {
			t.Errorf("prune removed blob %s of an image being read lazily", d)
		}
	}
	must(t, img.FetchAll(ctx))
	_, err = s.Prune(ctx, PruneOptions{})
	must(t, err)
	checkVerifyClean(t, s)
	if got, err := s.Lookup(img.Ref, img.Platform); err != nil {
		t.Errorf("the image fetched whole after a prune is not in the store: %v", err)
	} else {
		got.Close()
	}
	img.Close()
	_, err = s.Prune(ctx, PruneOptions{})
	must(t, err)
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), lazyDir, "sha256", "*")); len(left) > 0 {
		t.Errorf("prune left lazy files nobody uses: %v", left)
	}
}

// TestLazyBigChunksPullWhole checks that a layer whose TOC declares
// chunks bigger than a lazy read may hold in memory is pulled whole (and
// merges as before) instead of being read lazily, while the other layer
// stays lazy.
func TestLazyBigChunksPullWhole(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixture(t, lr) // 1 MiB chunks; big.bin in layer 0
	defer func(c, p int64) { maxLazyChunk, maxLazyPiece = c, p }(maxLazyChunk, maxLazyPiece)
	maxLazyChunk = 512 << 10
	img := getLazy(t, openStore(t, ""), conv, LazyOptions{})
	defer img.Close()
	if img.Layers[0].Content == ContentLazy {
		t.Fatal("a layer with chunks over maxLazyChunk is read lazily")
	}
	if img.Layers[1].Content != ContentLazy {
		t.Fatalf("layer 1 (small chunks) is %s, want %s", img.Layers[1].Content, ContentLazy)
	}
	sameDump(t, "an image with a layer of big chunks", dumpImage(t, img), want)

	maxLazyChunk, maxLazyPiece = 64<<20, 256<<10 // 1 MiB of random bytes does not compress
	img2 := getLazy(t, openStore(t, ""), conv, LazyOptions{})
	defer img2.Close()
	if img2.Layers[0].Content == ContentLazy {
		t.Fatal("a layer with members over maxLazyPiece is read lazily")
	}
	sameDump(t, "an image with a layer of big members", dumpImage(t, img2), want)
}

// TestLazyMembersDecodedOnce: a conversion with a minimum chunk size puts
// small files together in one member; reading the files in walk order
// decodes each member once, not once per chunk (before, reading k chunks
// of one member decoded its first bytes k times), in both formats.
func TestLazyMembersDecodedOnce(t *testing.T) {
	for _, f := range []ConvertFormat{FormatEStargz, FormatZstdChunked} {
		t.Run(string(f), func(t *testing.T) {
			lr := startLazyRegistry(t)
			_, conv, want := lazyFixtureWith(t, lr, ConvertOptions{ChunkSize: 1 << 20, MinChunkSize: 256 << 10, Format: f})
			s, err := Open(t.TempDir(), Options{SpanCache: -1}) // no span cache, no read-ahead: every read decodes
			must(t, err)
			img := getLazy(t, s, conv, LazyOptions{})
			defer img.Close()
			sameDump(t, "the lazy image", dumpImage(t, img), want) // reads every file in walk order
			tree, err := img.Tree(context.Background(), 0)
			must(t, err)
			touched := map[*lazyLayer]map[int]bool{}
			shared := false
			for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno)+uint64(tree.Len()); ino++ {
				n := tree.Node(ino)
				if n.Type() != overlay.TypeRegular || n.Size() == 0 {
					continue
				}
				l := img.content[n.Layer()].(*seekContent).src.(*lazyLayer)
				if touched[l] == nil {
					touched[l] = map[int]bool{}
				}
				for ci := l.x.chunkOf(n.Offset()); ci <= l.x.chunkOf(n.Offset()+n.Size()-1); ci++ {
					p := l.x.chunks[ci].piece
					touched[l][p] = true
					shared = shared || len(l.x.pieces[p].chunks) > 1
				}
			}
			if !shared {
				t.Fatal("no member holds more than one chunk: the minimum chunk size did not group files")
			}
			for l, pieces := range touched {
				if got := l.stats.memberOpens.Load(); got != int64(len(pieces)) {
					t.Errorf("layer %s: members decoded from their start %d times for %d members read", l.desc.Digest, got, len(pieces))
				}
			}
		})
	}
}

// TestLazyLayersOpenTogether: GetLazy fetches the TOCs of an image's
// layers side by side, so that their round trips overlap: each Range
// request is held until another one is in flight too (for at most 5 s,
// which one at a time would wait out each time, and fail).
func TestLazyLayersOpenTogether(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixture(t, lr)
	var mu sync.Mutex // guards inFlight, most
	var inFlight, most int
	two := make(chan struct{})
	var once sync.Once
	hold := func() {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight >= 2 {
			once.Do(func() { close(two) })
		}
		mu.Unlock()
		select {
		case <-two:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	lr.onRange.Store(&hold)
	img := getLazy(t, openStore(t, ""), conv, LazyOptions{})
	defer img.Close()
	lr.onRange.Store(nil)
	if most < 2 {
		t.Errorf("at most %d Range request(s) in flight while the layers opened; want their TOC fetches side by side", most)
	}
	sameDump(t, "lazy image whose layers opened together", dumpImage(t, img), want)
}
