package cache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ocifs/ocifs/internal/zran"
)

// framedZstd compresses b as one zstd frame per chunk bytes (with
// checksums), with a skippable frame after the first, as seekable zstd
// and zstd:chunked writers do.
func framedZstd(t testing.TB, b []byte, chunk int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	must(t, err)
	defer enc.Close()
	var out []byte
	for i := 0; i < len(b); i += chunk {
		out = enc.EncodeAll(b[i:min(i+chunk, len(b))], out)
		if i == 0 {
			out = binary.LittleEndian.AppendUint32(out, zstdSkippableMagic+3)
			out = binary.LittleEndian.AppendUint32(out, 5)
			out = append(out, "skip!"...)
		}
	}
	return out
}

func framedZstdLayer(t testing.TB, tarb []byte, chunk int) *testLayer {
	l := zstdLayer(t, tarb)
	l.blob = framedZstd(t, tarb, chunk)
	return l
}

// contentLayers are one layer per way of serving content, each large
// enough for several spans: gzip (checkpoints), multi-frame zstd (frames
// of 300 KiB, grouped into spans), single-frame zstd over zstdMaxSpan
// (kept unpacked even in compact mode) and uncompressed (the blob).
func contentLayers(t testing.TB) []*testLayer {
	tarb := func(i int) []byte { return bigLayerTar(t, 40+i, 160<<10) } // 6.4 MiB; distinct diffIDs
	return []*testLayer{
		gzipLayer(t, tarb(0)),
		framedZstdLayer(t, tarb(1), 300<<10),
		zstdLayer(t, tarb(2)),
		plainLayer(tarb(3)),
	}
}

// pullLayers pushes an image of layers and pulls it into a new store.
func pullLayers(t *testing.T, s *Store, layers ...*testLayer) (*Image, string) {
	t.Helper()
	host, _ := startRegistry(t)
	ref := host + "/test/content:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	t.Cleanup(func() { img.Close() })
	return img, ref
}

func TestContentKinds(t *testing.T) {
	layers := contentLayers(t)
	for _, tc := range []struct {
		mode Mode
		want []ContentKind
	}{
		{ModeCompact, []ContentKind{ContentGzip, ContentZstd, ContentUnpacked, ContentBlob}},
		{ModeUnpacked, []ContentKind{ContentUnpacked, ContentUnpacked, ContentUnpacked, ContentBlob}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			s := openStoreMode(t, "", tc.mode)
			img, _ := pullLayers(t, s, layers...)
			for i, l := range layers {
				if got := img.Layers[i].Content; got != tc.want[i] {
					t.Errorf("layer %d served as %s, want %s", i, got, tc.want[i])
				}
				_, hasFile := img.LayerFile(i)
				if hasFile != (tc.want[i] == ContentUnpacked || tc.want[i] == ContentBlob) {
					t.Errorf("layer %d (%s): LayerFile ok = %v", i, tc.want[i], hasFile)
				}
				checkReads(t, img, i, l.tar)
			}
			checkImageAgainst(t, img, layers)
		})
	}
}

// checkReads reads layer i at random offsets and lengths (some crossing
// spans, some past the end) and sequentially in 64 KiB pieces, against
// the tar it was made from.
func checkReads(t *testing.T, img *Image, i int, want []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(i), 7))
	size := int64(len(want))
	for range 200 {
		off := r.Int64N(size + 100)
		n := []int{1, 4096, 65536, 3 << 20}[r.IntN(4)]
		checkReadAt(t, img, i, want, off, n)
	}
	checkReadAt(t, img, i, want, size-1, 2)
	checkReadAt(t, img, i, want, 0, int(size))
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := img.ReadLayerAt(i, buf, off)
		if wantN := min(int64(len(buf)), size-off); int64(n) != wantN || (err != nil && err != io.EOF) ||
			!bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			t.Fatalf("layer %d: sequential read at %d: %d bytes, %v (want %d)", i, off, n, err, wantN)
		}
	}
}

func checkReadAt(t *testing.T, img *Image, i int, want []byte, off int64, n int) {
	t.Helper()
	p := make([]byte, n)
	got, err := img.ReadLayerAt(i, p, off)
	size := int64(len(want))
	wantN := int(max(0, min(int64(n), size-off)))
	if got != wantN || !bytes.Equal(p[:got], want[min(off, size):min(off, size)+int64(got)]) {
		t.Fatalf("layer %d: ReadAt(%d bytes at %d) = %d, %v; want %d bytes equal to the tar", i, n, off, got, err, wantN)
	}
	if (wantN < n) != (err == io.EOF) || (err != nil && err != io.EOF) {
		t.Fatalf("layer %d: ReadAt(%d bytes at %d) = %d, err %v", i, n, off, got, err)
	}
}

// TestContentConcurrentReads reads every compressed layer from many
// goroutines at once through a span cache far smaller than the layers,
// so that spans are evicted and their buffers reused while other readers
// copy from them (run under -race).
func TestContentConcurrentReads(t *testing.T) {
	layers := contentLayers(t)[:2]
	s, err := Open(t.TempDir(), Options{Mode: ModeCompact, SpanCache: 3 << 20})
	must(t, err)
	img, _ := pullLayers(t, s, layers...)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			li := g % len(layers)
			want := layers[li].tar
			p := make([]byte, 40<<10)
			for k := range 150 {
				off := r.Int64N(int64(len(want)))
				if g%4 == 0 { // a forward walker, for read-ahead
					off = int64(k) * int64(len(want)) / 150
				}
				n, err := img.ReadLayerAt(li, p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], want[off:off+int64(n)]) {
					errs <- fmt.Errorf("goroutine %d: layer %d at %d: %d bytes, %v", g, li, off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if u := s.spans.usage(); u > 3<<20 {
		t.Errorf("span cache holds %d bytes, bound %d", u, 3<<20)
	}
	if s.spans.stats.evictions.Load() == 0 || s.spans.stats.readAheads.Load() == 0 {
		t.Errorf("evictions %d, read-aheads %d: the test did not exercise them", s.spans.stats.evictions.Load(), s.spans.stats.readAheads.Load())
	}
}

// TestReadAheadOnForwardWalk: a reader walking a layer forward finds the
// next spans decoded (or being decoded) before it gets there; jumps to
// spans whose predecessors were not read start no read-ahead.
func TestReadAheadOnForwardWalk(t *testing.T) {
	l := contentLayers(t)[0]
	s := openStoreMode(t, "", ModeCompact)
	img, _ := pullLayers(t, s, l)
	sc := img.content[0].(*seekContent)
	if sc.src.numSpans() < 6 {
		t.Fatalf("only %d spans", sc.src.numSpans())
	}
	p := make([]byte, 64<<10)
	st := &s.spans.stats
	for _, span := range []int{5, 2} {
		start, _ := sc.src.spanBounds(span)
		img.ReadLayerAt(0, p, start)
	}
	if n := st.readAheads.Load(); n != 0 {
		t.Errorf("jumps started %d read-aheads", n)
	}
	start, _ := sc.src.spanBounds(3) // right after 2: forward
	img.ReadLayerAt(0, p, start)
	if n := st.readAheads.Load(); n == 0 {
		t.Error("entering span 3 after span 2 started no read-ahead")
	}

	s = openStoreMode(t, "", ModeCompact)
	img, _ = pullLayers(t, s, l)
	sc = img.content[0].(*seekContent)
	st = &s.spans.stats
	img.ReadLayerAt(0, p, 0) // entering span 0 reads ahead
	if !waitFor(func() bool { return s.spans.cached(spanKey{sc.id, 1}) && s.spans.cached(spanKey{sc.id, 2}) }) {
		t.Fatal("spans 1 and 2 were not decoded in the background")
	}
	for off := int64(0); off < int64(len(l.tar)); off += int64(len(p)) {
		n, err := img.ReadLayerAt(0, p, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], l.tar[off:off+int64(n)]) {
			t.Fatalf("read at %d: %d, %v", off, n, err)
		}
	}
	if st.readAheads.Load() != int64(sc.src.numSpans()-1) || st.misses.Load() >= int64(sc.src.numSpans()) {
		t.Errorf("forward walk over %d spans: %d read-aheads, %d misses (want every span after the first read ahead)",
			sc.src.numSpans(), st.readAheads.Load(), st.misses.Load())
	}
}

func waitFor(cond func() bool) bool {
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// TestSeekContentAfterClose: reads after Close fail instead of returning
// garbage, and the layer's spans leave the cache.
func TestSeekContentAfterClose(t *testing.T) {
	l := contentLayers(t)[0]
	s := openStoreMode(t, "", ModeCompact)
	img, _ := pullLayers(t, s, l)
	c := img.content[0]
	p := make([]byte, 4096)
	if _, err := c.ReadAt(p, 2<<20); err != nil {
		t.Fatal(err)
	}
	must(t, img.Close())
	if s.spans.usage() != 0 {
		t.Errorf("closed layer still has %d bytes of spans cached", s.spans.usage())
	}
	if _, err := c.ReadAt(p, 4<<20); err == nil {
		t.Error("ReadAt after Close succeeded")
	}
}

// TestZstdSpanGrouping: frames are grouped into spans of at least
// zstdSpanTarget, never above zstdMaxSpan unless one frame is.
func TestZstdSpanGrouping(t *testing.T) {
	const k = 1 << 10
	frames := func(sizes ...int64) ([]zstdFrameStart, int64) {
		var fs []zstdFrameStart
		var out int64
		for i, n := range sizes {
			fs = append(fs, zstdFrameStart{in: int64(i) * 100, out: out})
			out += n
		}
		return fs, out
	}
	for _, tc := range []struct {
		sizes    []int64
		starts   []int64 // uncompressed span starts
		seekable bool
	}{
		{[]int64{300 * k, 300 * k, 300 * k, 300 * k, 300 * k}, []int64{0, 1200 * k}, true},
		{[]int64{900 * k, 3900 * k, 100 * k}, []int64{0, 900 * k, 4800 * k}, true},
		{[]int64{0, 0, 200 * k, 0}, []int64{0}, true},
		{[]int64{8 << 20}, []int64{0}, false},
		{[]int64{100 * k, 8 << 20, 100 * k}, []int64{0, 100 * k, 100*k + 8<<20}, false},
	} {
		fs, size := frames(tc.sizes...)
		x := groupFrames(fs, size, int64(len(fs))*100)
		var starts []int64
		for _, c := range x.cps {
			starts = append(starts, c.out)
		}
		if fmt.Sprint(starts) != fmt.Sprint(tc.starts) || x.seekable() != tc.seekable {
			t.Errorf("frames %v: span starts %v seekable %v, want %v %v", tc.sizes, starts, x.seekable(), tc.starts, tc.seekable)
		}
		y, err := unmarshalZstdIndex(x.marshal(), size)
		if err != nil || fmt.Sprint(y.cps) != fmt.Sprint(x.cps) || y.dataEnd != x.dataEnd {
			t.Errorf("frames %v: round trip: %v, %+v", tc.sizes, err, y)
		}
	}
}

// TestZstdFrameWalk: the pass's frame walker hands the decoder exactly
// the stream, records where frames start, and rejects what the decoder
// would (stray bytes after the last frame, a frame cut short).
func TestZstdFrameWalk(t *testing.T) {
	data := bigLayerTar(t, 8, 100<<10)
	blob := framedZstd(t, data, 256<<10)
	z := newZstdOn(t, blob)
	got, err := io.ReadAll(z)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decoded %d bytes, %v; want %d", len(got), err, len(data))
	}
	if n := (len(data) + 256<<10 - 1) / (256 << 10); len(z.frames) != n || z.frames[1].out != 256<<10 {
		t.Errorf("%d frames recorded (%+v), want %d", len(z.frames), z.frames[:2], n)
	}
	// Each recorded frame decodes on its own from where it was recorded.
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for i, f := range z.frames[:len(z.frames)-1] {
		part, err := dec.DecodeAll(blob[f.in:z.frames[i+1].in], nil)
		if err != nil || !bytes.Equal(part, data[f.out:z.frames[i+1].out]) {
			t.Errorf("frame %d does not decode on its own: %v", i, err)
		}
	}
	for name, bad := range map[string][]byte{
		"stray bytes": append(bytes.Clone(blob), 1, 2, 3, 4, 5),
		"cut short":   blob[:len(blob)-10],
		"no frame":    {},
	} {
		if _, err := io.ReadAll(newZstdOn(t, bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func newZstdOn(t *testing.T, blob []byte) *zstdStream {
	t.Helper()
	z, err := newZstdStream(bufioReader(blob))
	must(t, err)
	t.Cleanup(z.close)
	return z
}

// TestSeekIndexSpanMatchesZran: the gzip seek index the pass records is
// the one zran builds from the blob (same checkpoints at DefaultSpan).
func TestSeekIndexSpanMatchesZran(t *testing.T) {
	l := contentLayers(t)[0]
	s := openStoreMode(t, "", ModeCompact)
	pullLayers(t, s, l)
	x, err := s.loadSeek(l.digest(), l.diffID())
	must(t, err)
	z := zran.NewReader(bytes.NewReader(l.blob), 0)
	if _, err := io.Copy(io.Discard, z); err != nil {
		t.Fatal(err)
	}
	want, err := z.Index()
	must(t, err)
	a, _ := x.gz.MarshalBinary()
	b, _ := want.MarshalBinary()
	if !bytes.Equal(a, b) || x.tarSize != int64(len(l.tar)) {
		t.Error("stored gzip seek index differs from zran's index of the blob")
	}
	if fi, _ := os.Stat(s.seekPath(l.digest())); fi.Size()*50 > int64(len(l.blob)) {
		t.Errorf("seek index of %d bytes for a blob of %d: over 2%%", fi.Size(), len(l.blob))
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 1<<20) }

// TestReadAheadSkipsDeadSpans: once a tree marks which spans hold live
// file data, read-ahead decodes only those.
func TestReadAheadSkipsDeadSpans(t *testing.T) {
	l := contentLayers(t)[0]
	s := openStoreMode(t, "", ModeCompact)
	img, _ := pullLayers(t, s, l)
	sc := img.content[0].(*seekContent)
	for _, i := range []int{0, 1, 5} {
		start, end := sc.src.spanBounds(i)
		sc.markLive(start+10, end-start-20, false)
	}
	img.ReadLayerAt(0, make([]byte, 10), 0)
	if n := s.spans.stats.readAheads.Load(); n != 2 {
		t.Errorf("%d read-aheads, want 2 (spans 1 and 5)", n)
	}
	// Image.Tree marks every span of a layer no later layer touches.
	img2, _ := pullLayers(t, openStoreMode(t, "", ModeCompact), l)
	if _, err := img2.Tree(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	sc2 := img2.content[0].(*seekContent)
	for i := range sc2.src.numSpans() {
		if !sc2.live.has(i) {
			t.Errorf("span %d of a one-layer image is not live", i)
		}
	}
}
