package zran

import (
	"errors"
	"fmt"
	"io"
)

// outChunk is how much output a streaming decoder produces between slides
// of its buffer (which keep the last WindowSize bytes).
const outChunk = 256 << 10

// Reader decompresses a gzip stream read once from start to end and
// records an Index of it on the way.
type Reader struct {
	d       decoder
	span    int64
	outBase int64 // uncompressed offset of d.out[0]
	rpos    int   // d.out[rpos:d.w] is decoded but not yet read
	cps     []checkpoint
	wc      windowCoder
	err     error // sticky: io.EOF once the stream has ended cleanly
}

// NewReader returns a Reader of the uncompressed bytes of the gzip stream
// r, whose first byte must be the first byte of the blob (compressed
// offsets in the index count from it). It records a checkpoint at the
// first deflate block boundary at or after every span bytes of output
// (DefaultSpan if span <= 0). r is read in chunks of up to 64 KiB and
// not beyond the end of the gzip data and its zero padding.
func NewReader(r io.Reader, span int64) *Reader {
	if span <= 0 {
		span = DefaultSpan
	}
	z := &Reader{span: span}
	z.d.input.reset(r, 0)
	z.d.out = make([]byte, WindowSize+outChunk+outSlack)
	z.d.limit = len(z.d.out) - outSlack
	z.d.startGzip()
	return z
}

// Read reads uncompressed bytes. It returns io.EOF after the last member
// (and any zero padding); every other error is sticky.
func (z *Reader) Read(p []byte) (int, error) {
	for z.rpos >= z.d.w {
		if z.err != nil {
			return 0, z.err
		}
		z.decode()
	}
	n := copy(p, z.d.out[z.rpos:z.d.w])
	z.rpos += n
	return n, nil
}

// WriteTo writes the rest of the uncompressed stream to w, saving io.Copy
// a copy through an intermediate buffer.
func (z *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if z.rpos < z.d.w {
			n, err := w.Write(z.d.out[z.rpos:z.d.w])
			z.rpos += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if z.err == io.EOF {
			return total, nil
		}
		if z.err != nil {
			return total, z.err
		}
		z.decode()
	}
}

// decode produces more output (or sets z.err); all output so far has
// been read.
func (z *Reader) decode() {
	if z.d.w >= z.d.limit {
		z.outBase += int64(z.d.slide())
		z.rpos = z.d.w
	}
	ev, err := z.d.next()
	switch {
	case err != nil:
		z.err = fmt.Errorf("decompressing gzip at compressed byte %d: %w", z.d.bitPos()/8, err)
	case ev == evBlock:
		z.blockStart()
	case ev == evEnd:
		z.err = io.EOF
	}
}

// blockStart records a checkpoint if one is due.
func (z *Reader) blockStart() {
	off := z.outBase + int64(z.d.w)
	if n := len(z.cps); n > 0 && off-z.cps[n-1].out < z.span {
		return
	}
	win := z.d.out[max(z.d.hist, z.d.w-WindowSize):z.d.w]
	z.cps = append(z.cps, checkpoint{
		in:   z.d.bitPos(),
		out:  off,
		wlen: len(win),
		win:  z.wc.compress(win),
	})
}

// Size is the number of uncompressed bytes decoded so far.
func (z *Reader) Size() int64 { return z.outBase + int64(z.d.w) }

// Index returns the index of the stream. It fails unless Read has
// returned io.EOF: drain the Reader (io.Copy(io.Discard, z)) if the
// consumer stops early.
func (z *Reader) Index() (*Index, error) {
	if z.err != io.EOF {
		if z.err != nil {
			return nil, z.err
		}
		return nil, errors.New("indexing gzip: stream not read to the end")
	}
	size := z.Size()
	cps := z.cps
	for len(cps) > 1 && cps[len(cps)-1].out >= size {
		cps = cps[:len(cps)-1] // empty trailing blocks start no span
	}
	return &Index{
		span:    z.span,
		size:    size,
		dataEnd: z.d.dataEnd,
		members: z.d.members,
		cps:     cps,
	}, nil
}
