package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// spanSource is a compressed layer cut into spans that decode on their
// own: gzip through zran checkpoints, zstd through frame boundaries. It
// is immutable and safe for concurrent use.
type spanSource interface {
	size() int64
	numSpans() int
	spanOf(off int64) int
	spanBounds(i int) (start, end int64)
	// bufSize is the buffer decode needs for span i.
	bufSize(i int) int
	// decode decodes span i into buf (len(buf) == bufSize(i)) and
	// returns its bytes, a part of buf.
	decode(i int, buf []byte) ([]byte, error)
}

// readAheadSpans is how many spans past the one being read are decoded in
// the background once a reader walks forward. mkfs.ext4 -d and the
// mount's prefetcher read files in sorted order, which mostly follows tar
// order.
const readAheadSpans = 8

// readAheadReach bounds how far past the span being read read-ahead looks
// for live spans.
const readAheadReach = 64

// seekContent serves a layer from its compressed blob, span by span,
// through the store's span cache.
type seekContent struct {
	src   spanSource
	blob  *os.File
	cache *spanCache
	id    uint64
	kind  ContentKind
	// seen has a bit per span, set by the first ReadAt in it. Entering a
	// span for the first time right after its predecessor (or one before
	// that) is a forward walk and starts read-ahead; keeping this per span
	// rather than "the last span read" lets two readers walk one layer at
	// different places (mkfs.ext4 behind, the mount's prefetcher ahead).
	seen spanSet
	// live has a bit per span that holds data of a file of a merged tree
	// made from the image (Image.Tree marks them); read-ahead skips the
	// others, which hold only what later layers delete or replace. Until
	// a tree is made (hasLive false) every span counts as live.
	live    spanSet
	hasLive atomic.Bool
	// remain has, per span, the bytes of the tree's file data in it that
	// no ReadAt has read yet; counting says it is kept (exactly one tree
	// was marked: see Image.markLive). A span whose count reaches zero
	// is dropped from the span cache (consume): the kernel's page cache
	// holds what was read, and the buffer is reused instead of the
	// process growing by one per span.
	remain   []atomic.Int64
	counting atomic.Bool
	// ahead is set while Image.DecodeAhead decodes this layer's spans in
	// the order the tree's files will be read; noteRead's read-ahead
	// stands aside meanwhile (two decoders on two CPUs slow the build).
	ahead atomic.Bool
}

// spanSet is a bit set of spans, safe for concurrent use.
type spanSet []atomic.Uint64

func newSpanSet(n int) spanSet { return make(spanSet, (n+63)/64) }

// add sets bit i and reports whether it was clear.
func (s spanSet) add(i int) bool {
	m := uint64(1) << (i % 64)
	return s[i/64].Or(m)&m == 0
}

func (s spanSet) has(i int) bool { return s[i/64].Load()&(1<<(i%64)) != 0 }

var _ layerContent = (*seekContent)(nil)

func newSeekContent(src spanSource, blob *os.File, c *spanCache, kind ContentKind) *seekContent {
	n := src.numSpans()
	return &seekContent{src: src, blob: blob, cache: c, id: c.newID(), kind: kind, seen: newSpanSet(n), live: newSpanSet(n), remain: make([]atomic.Int64, n)}
}

func (c *seekContent) File() *os.File    { return nil }
func (c *seekContent) Kind() ContentKind { return c.kind }

// Close drops the layer's cached spans and closes the blob; read-ahead
// still running then fails quietly.
func (c *seekContent) Close() error {
	c.cache.drop(c.id)
	return c.blob.Close()
}

// markLive records that the uncompressed range [off, off+n) holds file
// data a tree serves, and counts its bytes per span if count is set.
func (c *seekContent) markLive(off, n int64, count bool) {
	first, last, end := c.spansOf(off, n)
	for i := first; i <= last; i++ {
		c.live.add(i)
		if count {
			start, stop := c.src.spanBounds(i)
			c.remain[i].Add(min(end, stop) - max(off, start))
		}
	}
	c.hasLive.Store(true)
}

// spansOf returns the spans that hold the range [off, off+n) of the
// stream, clipped to its end (first > last when none do).
func (c *seekContent) spansOf(off, n int64) (first, last int, end int64) {
	end = min(off+n, c.src.size())
	if n <= 0 || off < 0 || off >= end {
		return 0, -1, end
	}
	return c.src.spanOf(off), c.src.spanOf(end - 1), end
}

// consume counts k bytes read from span i, and drops the span from the
// cache once all its live bytes were read. A range read twice counts
// twice: the span may then go early and be decoded again if read again,
// which costs time, never correctness.
func (c *seekContent) consume(i int, k int64) {
	if !c.counting.Load() || k <= 0 {
		return
	}
	if v := c.remain[i].Add(-k); v <= 0 && v+k > 0 {
		c.cache.release(spanKey{c.id, i})
	}
}

// usedUp reports whether every byte of the tree's file data in span i
// was read (never while the counting is off): read-ahead then skips it.
func (c *seekContent) usedUp(i int) bool { return c.counting.Load() && c.remain[i].Load() <= 0 }

var errNegativeOffset = errors.New("negative offset")

func (c *seekContent) ReadAt(p []byte, off int64) (int, error) {
	size := c.src.size()
	switch {
	case off < 0:
		return 0, fmt.Errorf("reading layer at %d: %w", off, errNegativeOffset)
	case len(p) == 0:
		return 0, nil
	case off >= size:
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	n := 0
	for pos := off; pos < end; pos = off + int64(n) {
		i := c.src.spanOf(pos)
		c.noteRead(i)
		start, _ := c.src.spanBounds(i)
		k := 0
		err := c.span(i, func(b []byte) {
			k = copy(p[n:end-off], b[pos-start:])
		})
		if err != nil {
			return n, err
		}
		n += k
		c.consume(i, int64(k))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *seekContent) span(i int, use func([]byte)) error {
	return c.cache.read(spanKey{c.id, i}, c.src.bufSize(i), c.decoder(i), use)
}

func (c *seekContent) decoder(i int) decodeFunc {
	return func(buf []byte) ([]byte, error) { return c.src.decode(i, buf) }
}

// noteRead starts read-ahead of the next live spans when a read enters a
// span for the first time, just after reading the one or two before it.
func (c *seekContent) noteRead(i int) {
	if !c.seen.add(i) || c.ahead.Load() || (i > 0 && !c.seen.has(i-1) && (i < 2 || !c.seen.has(i-2))) {
		return
	}
	all := !c.hasLive.Load()
	for j, queued := i+1, 0; queued < readAheadSpans && j < min(c.src.numSpans(), i+readAheadReach); j++ {
		if !all && !c.live.has(j) {
			continue
		}
		if !c.cache.readAhead(spanKey{c.id, j}, c.src.bufSize(j), c.decoder(j), func() bool { return c.usedUp(j) }) {
			return
		}
		queued++
	}
}
