package cache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/overlay"
)

// aheadImage is a compact image of two layers read from their blobs (gzip
// and multi-frame zstd), 24 incompressible files of 200 KiB each under
// a/ and b/ (about 5 spans of 1 MiB and 16 frames of 300 KiB), and its
// files' contents by path.
func aheadImage(t *testing.T, spanCache int64) (*Store, *Image, map[string][]byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	want := map[string][]byte{}
	layer := func(dir string) []byte {
		var items []ti.Entry
		for i := range 24 {
			b := make([]byte, 200<<10)
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			p := fmt.Sprintf("%s/f%02d", dir, i)
			want[p] = b
			items = append(items, ti.File(p, string(b)))
		}
		return ti.Layer(items...)
	}
	s, err := Open(t.TempDir(), Options{Mode: ModeCompact, SpanCache: spanCache})
	must(t, err)
	img, _ := pullLayers(t, s, gzipLayer(t, layer("a")), framedZstdLayer(t, layer("b"), 300<<10))
	for i, l := range img.Layers {
		if l.Content != ContentGzip && l.Content != ContentZstd {
			t.Fatalf("layer %d served as %s", i, l.Content)
		}
	}
	return s, img, want
}

// readAll reads every file of t in walk order, one read per file, and
// checks its bytes.
func readAll(t *testing.T, img *Image, tree *overlay.Tree, want map[string][]byte) {
	t.Helper()
	err := tree.Walk(func(p string, n *overlay.Node) error {
		if n.Type() != overlay.TypeRegular {
			return nil
		}
		b := make([]byte, n.Size())
		if _, err := n.ReadAt(img, b, 0); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !bytes.Equal(b, want[p]) {
			return fmt.Errorf("%s: wrong bytes", p)
		}
		return nil
	})
	must(t, err)
}

func liveSpans(img *Image) (n int) {
	for _, c := range img.content {
		if sc, ok := c.(*seekContent); ok {
			for i := range sc.src.numSpans() {
				if sc.live.has(i) {
					n++
				}
			}
		}
	}
	return n
}

// TestSpansLeaveOnceRead: reading every file of the tree once decodes
// each live span once and leaves none in the span cache (each left when
// the last of its bytes was read).
func TestSpansLeaveOnceRead(t *testing.T) {
	s, img, want := aheadImage(t, 0)
	tree, err := img.Tree(context.Background(), 0)
	must(t, err)
	for _, c := range img.content {
		c.(*seekContent).ahead.Store(true) // no read-ahead: decodes are the reader's alone
	}
	readAll(t, img, tree, want)
	live := int64(liveSpans(img))
	st := s.SpanStats()
	if st.Decodes != live || st.Released != live || s.spans.usage() != 0 {
		t.Errorf("%d live spans: %d decoded, %d released, %d bytes still cached; want each decoded and released once, none cached",
			live, st.Decodes, st.Released, s.spans.usage())
	}
	// Read again, every span is decoded again: they had left the cache.
	readAll(t, img, tree, want)
	if st := s.SpanStats(); st.Decodes != 2*live {
		t.Errorf("second read: %d decodes in all, want %d", st.Decodes, 2*live)
	}
}

// TestDecodeAhead: DecodeAhead decodes the spans in the order a walk of
// the tree reads them, stops half the span cache ahead of the readers,
// goes on as they read, and leaves nothing cached once all is read.
func TestDecodeAhead(t *testing.T) {
	s, img, want := aheadImage(t, minDecodeAheadCache) // 4 MiB ahead at most
	tree, err := img.Tree(context.Background(), 0)
	must(t, err)
	order := img.spanOrder(tree)
	if len(order) != liveSpans(img) {
		t.Fatalf("span order lists %d spans, %d are live", len(order), liveSpans(img))
	}
	stop := img.DecodeAhead(tree)
	defer stop()
	// Without readers it stops once past the limit (its goroutine checks
	// before each span), with the order's first spans cached.
	for deadline := time.Now().Add(20 * time.Second); s.spans.usage() <= 4<<20; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("DecodeAhead cached only %d bytes", s.spans.usage())
		}
	}
	time.Sleep(100 * time.Millisecond) // time to go on, if it wrongly did
	got := int(s.SpanStats().Ordered)
	if got >= len(order) {
		t.Fatalf("decoded %d of %d spans before any read, want it stopped at 4 MiB ahead", got, len(order))
	}
	if u := s.spans.usage(); u > 4<<20+2<<20 {
		t.Errorf("%d bytes cached ahead of the readers, want at most 4 MiB plus a span", u)
	}
	for k, sp := range order {
		if cached := s.spans.cached(spanKey{sp.sc.id, sp.i}); cached != (k < got) {
			t.Errorf("span %d in walk order cached %v after %d decoded ahead", k, cached, got)
		}
	}
	readAll(t, img, tree, want)
	stop()
	if u := s.spans.usage(); u != 0 {
		t.Errorf("%d bytes still cached after every file was read", u)
	}
	if st := s.SpanStats(); st.Ordered < int64(len(order))/2 {
		t.Errorf("only %d of %d spans decoded ahead (%s)", st.Ordered, len(order), st)
	}
}

// TestDecodeAheadOtherTree: a second tree turns the counting off, and
// DecodeAhead over it does nothing; nor does it with a span cache too
// small to hold spans ahead.
func TestDecodeAheadOtherTree(t *testing.T) {
	s, img, _ := aheadImage(t, 0)
	_, err := img.Tree(context.Background(), 0)
	must(t, err)
	t1, err := img.Tree(context.Background(), 1)
	must(t, err)
	for _, c := range img.content {
		if c.(*seekContent).counting.Load() {
			t.Error("a second tree left the counting on")
		}
	}
	stop := img.DecodeAhead(t1)
	time.Sleep(200 * time.Millisecond) // time to decode, if it wrongly did
	stop()
	if st := s.SpanStats(); st.Decodes != 0 {
		t.Errorf("DecodeAhead over a second tree decoded %d spans", st.Decodes)
	}

	s2, img2, _ := aheadImage(t, minDecodeAheadCache-1)
	t2, err := img2.Tree(context.Background(), 0)
	must(t, err)
	stop = img2.DecodeAhead(t2)
	time.Sleep(200 * time.Millisecond)
	stop()
	if st := s2.SpanStats(); st.Decodes != 0 {
		t.Errorf("DecodeAhead with a span cache of %d bytes decoded %d spans", minDecodeAheadCache-1, st.Decodes)
	}
}

// gatedSource is a spanSource of n spans of spanLen bytes; decoding span
// block waits for gate to close.
type gatedSource struct {
	n, spanLen, block int
	gate              chan struct{}
}

func (s *gatedSource) size() int64          { return int64(s.n * s.spanLen) }
func (s *gatedSource) numSpans() int        { return s.n }
func (s *gatedSource) spanOf(off int64) int { return int(off) / s.spanLen }
func (s *gatedSource) spanBounds(i int) (int64, int64) {
	return int64(i * s.spanLen), int64((i + 1) * s.spanLen)
}
func (s *gatedSource) bufSize(int) int { return s.spanLen }
func (s *gatedSource) decode(i int, b []byte) ([]byte, error) {
	if i == s.block {
		<-s.gate
	}
	for j := range b {
		b[j] = byte(i + j)
	}
	return b, nil
}

// TestReadAheadSkipsUsedUpSpans: a read-ahead job that reaches a span
// after a reader decoded it itself and read every live byte of it
// neither decodes it again nor leaves it cached (it stayed until
// evicted, a buffer more in use).
func TestReadAheadSkipsUsedUpSpans(t *testing.T) {
	src := &gatedSource{n: 4, spanLen: 1000, block: 1, gate: make(chan struct{})}
	c := newSpanCache(8 << 20)
	c.slots = 1
	sc := newSeekContent(src, nil, c, ContentGzip)
	sc.markLive(0, src.size(), true)
	sc.counting.Store(true)
	read := func(i int) {
		b := make([]byte, src.spanLen)
		if _, err := sc.ReadAt(b, int64(i*src.spanLen)); err != nil || b[7] != byte(i+7) {
			t.Fatalf("reading span %d: %v", i, err)
		}
	}
	read(0) // queues spans 1-3 for read-ahead; the one worker waits in span 1
	if !waitFor(func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.m[spanKey{sc.id, 1}] != nil }) {
		t.Fatal("read-ahead of span 1 did not start")
	}
	read(2) // decoded by the reader, used up and released
	close(src.gate)
	if !waitFor(func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.workers == 0 }) {
		t.Fatal("read-ahead did not finish")
	}
	if c.cached(spanKey{sc.id, 2}) {
		t.Error("span 2 was read whole, yet read-ahead left it cached")
	}
	if d := c.stats.decodes.Load(); d != 4 {
		t.Errorf("%d decodes of 4 spans, want 4 (span 2 not again by read-ahead)", d)
	}
}
