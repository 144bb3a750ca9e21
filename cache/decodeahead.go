package cache

import (
	"sync"
	"sync/atomic"

	"github.com/ocifs/ocifs/overlay"
)

// DecodeAhead decodes, in one goroutine, the spans of t's file data in
// the layers read from their compressed blobs, in the order mkfs.ext4 -d
// reads the files (depth first, names sorted: overlay.Tree.Walk's order),
// so that a reader of every file (ocifs build) finds them decoded. It
// stays at most 32 MiB (at most half the span cache) ahead: it waits
// while the cached spans take more, and spans leave the cache once every
// byte of the tree's files in them was read. Meanwhile those layers' own
// read-ahead stands aside (one decoder per spare CPU; see spanCache). t
// must be the tree img.Tree returned first (its bytes are the ones
// counted); with another tree, no layer read from a compressed blob or a
// span cache under 8 MiB it does nothing. stop ends the decoding and
// returns once the goroutine has; it must be called.
func (img *Image) DecodeAhead(t *overlay.Tree) (stop func()) {
	var layers []*seekContent
	for _, c := range img.content {
		if sc, ok := c.(*seekContent); ok && sc.counting.Load() {
			layers = append(layers, sc)
		}
	}
	if len(layers) == 0 || img.marked.Load() != t || img.store.spans.max < minDecodeAheadCache {
		return func() {}
	}
	for _, sc := range layers {
		sc.ahead.Store(true)
	}
	c := img.store.spans
	var stopped atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			for _, sc := range layers {
				sc.ahead.Store(false)
			}
		}()
		for _, s := range img.spanOrder(t) {
			if s.sc.usedUp(s.i) {
				continue // read already
			}
			c.waitRoom(min(c.max/2, decodeAheadBytes), &stopped)
			if stopped.Load() {
				return
			}
			c.stats.ordered.Add(1)
			c.decodeNow(spanKey{s.sc.id, s.i}, s.sc.src.bufSize(s.i), s.sc.decoder(s.i), func() bool { return s.sc.usedUp(s.i) })
		}
	}()
	return func() {
		stopped.Store(true)
		c.wake()
		wg.Wait()
	}
}

// decodeAheadBytes is how far DecodeAhead may get ahead of the readers:
// the bytes of decoded spans not yet read. docs/BENCHMARKS.md measured
// builds with this value only; less ahead is less memory.
const decodeAheadBytes = 32 << 20

// minDecodeAheadCache is the smallest span cache DecodeAhead works with:
// a few spans ahead must fit in half of it (a smaller cache keeps little
// or nothing, and decoding ahead would only take a CPU from the readers).
const minDecodeAheadCache = 8 << 20

type layerSpan struct {
	sc *seekContent
	i  int
}

// spanOrder lists the spans holding t's file data in the order a walk of
// t reads them, each once.
func (img *Image) spanOrder(t *overlay.Tree) []layerSpan {
	var out []layerSpan
	listed := make(map[*seekContent]spanSet)
	add := func(sc *seekContent, off, n int64) {
		if !sc.counting.Load() {
			return
		}
		set := listed[sc]
		if set == nil {
			set = newSpanSet(sc.src.numSpans())
			listed[sc] = set
		}
		first, last, _ := sc.spansOf(off, n)
		for i := first; i <= last; i++ {
			if set.add(i) {
				out = append(out, layerSpan{sc, i})
			}
		}
	}
	t.Walk(func(_ string, n *overlay.Node) error {
		img.fileRanges(n, add)
		return nil
	})
	return out
}
