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
	// decode fills buf (len(buf) == end-start of span i).
	decode(i int, buf []byte) error
}

// readAheadSpans is how many spans past the one being read are decoded in
// the background once a reader walks forward. mkfs.ext4 -d and the
// mount's prefetcher read files in sorted order, which mostly follows tar
// order; four spans keep two cores busy while the reader copies.
const readAheadSpans = 4

// seekContent serves a layer from its compressed blob, span by span,
// through the store's span cache.
type seekContent struct {
	src   spanSource
	blob  *os.File
	cache *spanCache
	id    uint64
	kind  ContentKind
	// last is the span the latest ReadAt started in (-1: none yet); a
	// read in the span after it (or the one after that) starts read-ahead.
	last atomic.Int64
}

var _ layerContent = (*seekContent)(nil)

func newSeekContent(src spanSource, blob *os.File, c *spanCache, kind ContentKind) *seekContent {
	sc := &seekContent{src: src, blob: blob, cache: c, id: c.newID(), kind: kind}
	sc.last.Store(-1)
	return sc
}

func (c *seekContent) File() *os.File    { return nil }
func (c *seekContent) Kind() ContentKind { return c.kind }

// Close drops the layer's cached spans and closes the blob; read-ahead
// still running then fails quietly.
func (c *seekContent) Close() error {
	c.cache.drop(c.id)
	return c.blob.Close()
}

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
		err := c.span(i, func(b []byte) {
			n += copy(p[n:end-off], b[pos-start:])
		})
		if err != nil {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *seekContent) span(i int, use func([]byte)) error {
	start, end := c.src.spanBounds(i)
	return c.cache.read(spanKey{c.id, i}, int(end-start), c.decoder(i), use)
}

func (c *seekContent) decoder(i int) decodeFunc {
	return func(buf []byte) error { return c.src.decode(i, buf) }
}

// noteRead starts read-ahead when a read moves forward by a span or two.
func (c *seekContent) noteRead(i int) {
	prev := c.last.Swap(int64(i))
	if int64(i) <= prev || int64(i) > prev+2 {
		return
	}
	for j := i + 1; j <= i+readAheadSpans && j < c.src.numSpans(); j++ {
		start, end := c.src.spanBounds(j)
		if !c.cache.readAhead(spanKey{c.id, j}, int(end-start), c.decoder(j)) {
			return
		}
	}
}
