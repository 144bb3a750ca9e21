package zran

import (
	"bytes"
	"compress/flate"
	"fmt"
	"sort"
)

// DefaultSpan is the output distance between checkpoints that NewReader
// uses for span <= 0, chosen by measurement (see doc.go): a random 4 KiB
// read decodes half a span on average (about 1 ms for 1 MiB of shared
// libraries), while the index costs about 0.5% of the blob; 4 MiB would
// save 0.4% of the blob for reads three times slower.
const DefaultSpan = 1 << 20

// windowLevel is the compress/flate level windows are stored at.
const windowLevel = flate.BestSpeed

// checkpoint is a place decoding can start from: the first bit of a
// deflate block, the output offset of its first byte, and the history
// before it, compressed.
type checkpoint struct {
	in   int64  // bit offset in the compressed stream
	out  int64  // offset in the uncompressed stream
	wlen int    // length of the window, <= WindowSize
	win  []byte // the window as a raw deflate stream
}

// Index holds the checkpoints of one gzip stream. It is immutable once
// built or decoded, so it may be shared by any number of goroutines.
type Index struct {
	span    int64
	size    int64 // uncompressed size
	dataEnd int64 // compressed offset just past the last member's trailer
	members int
	cps     []checkpoint
}

// Size is the length of the uncompressed stream.
func (x *Index) Size() int64 { return x.size }

// CompressedSize is the length of the gzip data: up to the end of the
// last member, not counting any zero padding after it.
func (x *Index) CompressedSize() int64 { return x.dataEnd }

// Span is the output distance between checkpoints the index was built with.
func (x *Index) Span() int64 { return x.span }

// Members is the number of gzip members in the stream.
func (x *Index) Members() int { return x.members }

// NumSpans is the number of checkpoints, hence of spans: span i runs from
// checkpoint i to checkpoint i+1 (the last one to the end of the data).
func (x *Index) NumSpans() int { return len(x.cps) }

// SpanBounds returns the uncompressed range [start, end) of span i.
func (x *Index) SpanBounds(i int) (start, end int64) {
	start, end = x.cps[i].out, x.size
	if i+1 < len(x.cps) {
		end = x.cps[i+1].out
	}
	return start, end
}

// SpanOf returns the span holding uncompressed offset off (clamped to the
// first and last span).
func (x *Index) SpanOf(off int64) int {
	i := sort.Search(len(x.cps), func(i int) bool { return x.cps[i].out > off })
	return max(0, i-1)
}

// compressedEnd is the byte just past the compressed data span i needs.
func (x *Index) compressedEnd(i int) int64 {
	if i+1 < len(x.cps) {
		return (x.cps[i+1].in + 7) / 8
	}
	return x.dataEnd
}

// windowCoder compresses windows, reusing one flate writer.
type windowCoder struct {
	buf bytes.Buffer
	fw  *flate.Writer
}

func (c *windowCoder) compress(win []byte) []byte {
	if len(win) == 0 {
		return nil
	}
	c.buf.Reset()
	if c.fw == nil {
		c.fw, _ = flate.NewWriter(&c.buf, windowLevel)
	} else {
		c.fw.Reset(&c.buf)
	}
	c.fw.Write(win) // a bytes.Buffer does not fail
	c.fw.Close()
	return bytes.Clone(c.buf.Bytes())
}

// window decompresses checkpoint i's window into dst[:wlen] with our own
// inflater; len(dst) must be at least wlen+1+outSlack (decoding stops one
// byte past wlen to tell a window that is too long).
func (x *Index) window(d *decoder, i int, dst []byte) ([]byte, error) {
	c := &x.cps[i]
	if c.wlen == 0 {
		return dst[:0], nil
	}
	d.input.reset(bytes.NewReader(c.win), 0)
	d.out, d.w, d.hist, d.limit = dst, 0, 0, c.wlen+1
	d.startStream()
	for {
		ev, err := d.run()
		if err != nil {
			return nil, fmt.Errorf("decoding window of checkpoint %d: %w", i, err)
		}
		if ev != evBlock {
			break
		}
	}
	if d.w != c.wlen || d.state != stDone {
		return nil, fmt.Errorf("%w: window of checkpoint %d does not decode to %d bytes", ErrFormat, i, c.wlen)
	}
	return dst[:c.wlen], nil
}
