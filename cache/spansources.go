package cache

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ocifs/ocifs/internal/zran"
)

// gzipSpans reads a gzip blob through its zran checkpoints.
type gzipSpans struct {
	x  *zran.Index
	ra *zran.ReaderAt
}

func newGzipSpans(blob io.ReaderAt, x *zran.Index) *gzipSpans {
	return &gzipSpans{x: x, ra: zran.NewReaderAt(blob, x)}
}

func (g *gzipSpans) size() int64                         { return g.x.Size() }
func (g *gzipSpans) numSpans() int                       { return g.x.NumSpans() }
func (g *gzipSpans) spanOf(off int64) int                { return g.x.SpanOf(off) }
func (g *gzipSpans) spanBounds(i int) (start, end int64) { return g.x.SpanBounds(i) }

func (g *gzipSpans) bufSize(i int) int { return g.ra.SpanBufferSize(i) }

// decode decodes from the span's checkpoint straight into buf (after the
// window), reading only the span's compressed bytes.
func (g *gzipSpans) decode(i int, buf []byte) ([]byte, error) { return g.ra.DecodeSpanTo(i, buf) }

// zstdSpans reads a zstd blob span by span: each span is whole frames.
type zstdSpans struct {
	x    *zstdIndex
	blob io.ReaderAt
}

func (z *zstdSpans) size() int64                         { return z.x.size }
func (z *zstdSpans) numSpans() int                       { return z.x.numSpans() }
func (z *zstdSpans) spanOf(off int64) int                { return z.x.spanOf(off) }
func (z *zstdSpans) spanBounds(i int) (start, end int64) { return z.x.spanBounds(i) }

// zstdScratch holds compressed spans while they are decoded.
var zstdScratch = sync.Pool{New: func() any { return new([]byte) }}

// zstdSpanDecoder is shared by every zstd layer: DecodeAll may run on
// GOMAXPROCS goroutines at once. Its memory bound is well above the
// longest servable span.
var zstdSpanDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(4*zstdMaxSpan))
})

func (z *zstdSpans) bufSize(i int) int {
	start, end := z.x.spanBounds(i)
	return int(end - start)
}

// decode decodes span i's frames into buf, which they fill exactly.
func (z *zstdSpans) decode(i int, buf []byte) ([]byte, error) {
	dec, err := zstdSpanDecoder()
	if err != nil {
		return nil, err
	}
	from, to := z.x.compressedRange(i)
	sp := zstdScratch.Get().(*[]byte)
	defer zstdScratch.Put(sp)
	if int64(cap(*sp)) < to-from {
		*sp = make([]byte, to-from)
	}
	comp := (*sp)[:to-from]
	if _, err := z.blob.ReadAt(comp, from); err != nil {
		return nil, fmt.Errorf("reading zstd span %d at byte %d: %w", i, from, err)
	}
	out, err := dec.DecodeAll(comp, buf[:0])
	if err != nil {
		return nil, fmt.Errorf("decoding zstd span %d: %w", i, err)
	}
	if len(out) != len(buf) || &out[0] != &buf[0] {
		return nil, fmt.Errorf("decoding zstd span %d: %d bytes, the seek index says %d", i, len(out), len(buf))
	}
	return buf, nil
}
