package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// zstdSpanTarget is the uncompressed length a zstd span grows to before
// the next frame starts a new one (frames of zstd:chunked layers are often
// a few KiB: one per file).
const zstdSpanTarget = 1 << 20

// zstdMaxSpan is the longest span a zstd layer may have to be served from
// its blob: a 4 KiB read decodes a whole span (zstd decodes ~1 GB/s here,
// so 4 ms at most). A layer with a longer frame (every single-frame layer
// above this size) keeps its unpacked copy in every mode.
const zstdMaxSpan = 4 << 20

// zstdIndex is where a zstd blob's spans start: each span is one or more
// whole frames, decodable with the blob's bytes [cps[i].in, cps[i+1].in)
// (the last one up to dataEnd).
type zstdIndex struct {
	size    int64 // uncompressed
	dataEnd int64 // end of the last frame
	cps     []zstdFrameStart
	maxSpan int64 // longest span
}

// groupFrames makes spans of whole frames: a frame starts a new span when
// the current one has reached zstdSpanTarget, or when adding it would
// take the span beyond zstdMaxSpan.
func groupFrames(frames []zstdFrameStart, size, dataEnd int64) *zstdIndex {
	x := &zstdIndex{size: size, dataEnd: dataEnd}
	end := func(k int) int64 { // uncompressed end of frame k
		if k+1 < len(frames) {
			return frames[k+1].out
		}
		return size
	}
	for k, f := range frames {
		if f.out >= size {
			break // empty frames at the end start no span
		}
		if n := len(x.cps); n > 0 {
			cur := f.out - x.cps[n-1].out
			if cur < zstdSpanTarget && (cur == 0 || cur+end(k)-f.out <= zstdMaxSpan) {
				continue
			}
		}
		x.cps = append(x.cps, f)
	}
	x.maxSpan = x.longestSpan()
	return x
}

func (x *zstdIndex) longestSpan() int64 {
	var m int64
	for i := range x.cps {
		s, e := x.spanBounds(i)
		m = max(m, e-s)
	}
	return m
}

// seekable says whether every span is short enough to serve from the blob.
func (x *zstdIndex) seekable() bool { return x.maxSpan <= zstdMaxSpan }

func (x *zstdIndex) numSpans() int { return len(x.cps) }

func (x *zstdIndex) spanBounds(i int) (start, end int64) {
	start, end = x.cps[i].out, x.size
	if i+1 < len(x.cps) {
		end = x.cps[i+1].out
	}
	return start, end
}

// compressedRange is the blob's byte range [from, to) that holds span i.
func (x *zstdIndex) compressedRange(i int) (from, to int64) {
	from, to = x.cps[i].in, x.dataEnd
	if i+1 < len(x.cps) {
		to = x.cps[i+1].in
	}
	return from, to
}

// The payload of a zstd seek file: uvarint dataEnd, number of spans, then
// per span the uvarint deltas of in and out from the previous one.
func (x *zstdIndex) marshal() []byte {
	b := binary.AppendUvarint(nil, uint64(x.dataEnd))
	b = binary.AppendUvarint(b, uint64(len(x.cps)))
	var in, out int64
	for _, c := range x.cps {
		b = binary.AppendUvarint(b, uint64(c.in-in))
		b = binary.AppendUvarint(b, uint64(c.out-out))
		in, out = c.in, c.out
	}
	return b
}

var errZstdIndex = errors.New("invalid zstd frame table")

// unmarshalZstdIndex decodes a payload and checks its invariants: spans
// start at uncompressed offset 0, offsets strictly increase, and every
// span starts before the end of the data.
func unmarshalZstdIndex(b []byte, size int64) (*zstdIndex, error) {
	next := func() (int64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > 1<<62 {
			return 0, fmt.Errorf("%w: bad varint", errZstdIndex)
		}
		b = b[n:]
		return int64(v), nil
	}
	dataEnd, err := next()
	if err != nil {
		return nil, err
	}
	n, err := next()
	if err != nil || n > int64(len(b)/2) {
		return nil, fmt.Errorf("%w: bad span count", errZstdIndex)
	}
	x := &zstdIndex{size: size, dataEnd: dataEnd, cps: make([]zstdFrameStart, n)}
	var in, out int64
	for i := range x.cps {
		di, err1 := next()
		do, err2 := next()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if i > 0 && (di == 0 || do == 0) || i == 0 && do != 0 {
			return nil, fmt.Errorf("%w: span %d does not move forward", errZstdIndex, i)
		}
		in, out = in+di, out+do
		if in >= dataEnd || out >= size {
			return nil, fmt.Errorf("%w: span %d starts past the end", errZstdIndex, i)
		}
		x.cps[i] = zstdFrameStart{in: in, out: out}
	}
	if len(b) != 0 || (n == 0) != (size == 0) {
		return nil, fmt.Errorf("%w: does not cover the stream", errZstdIndex)
	}
	x.maxSpan = x.longestSpan()
	return x, nil
}

// spanOf returns the span holding uncompressed offset off.
func (x *zstdIndex) spanOf(off int64) int {
	lo, hi := 0, len(x.cps)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.cps[m].out <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return max(0, lo-1)
}
