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
	pend    pending
	err     error // sticky: io.EOF once the stream has ended cleanly
}

var (
	_ io.Reader   = (*Reader)(nil)
	_ io.WriterTo = (*Reader)(nil)
)

// pending is the last checkpoint while its window is being thinned: the
// output that follows it for WindowSize bytes marks which window bytes
// back-references copy; the others are zeroed before compression (about
// nine in ten, so a thinned window compresses about five times smaller).
// Output further on cannot reach back into the window.
type pending struct {
	active bool
	cp     int    // index in cps
	win    []byte // copy of the window
	used   []bool // used[i]: win[i] is copied by a back-reference
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
	if err != nil {
		z.err = fmt.Errorf("decompressing gzip at compressed byte %d: %w", z.d.bitPos()/8, err)
		return
	}
	z.settle(ev == evEnd)
	switch ev {
	case evBlock:
		z.blockStart()
	case evEnd:
		z.err = io.EOF
	}
}

// settle stores the pending window once its marks are complete: enough
// output has followed, a new member has started (members do not refer to
// each other) or the stream has ended.
func (z *Reader) settle(ended bool) {
	d := &z.d
	if z.pend.active && (ended || d.w >= d.trackEnd || d.hist >= d.trackLo+len(z.pend.win)) {
		z.storePending(true)
	}
}

// storePending compresses the pending window, thinned or whole.
func (z *Reader) storePending(thin bool) {
	p := &z.pend
	if thin {
		for i, u := range p.used {
			if !u {
				p.win[i] = 0
			}
		}
	}
	z.cps[p.cp].win = z.wc.compress(p.win)
	p.active = false
	z.d.trackEnd, z.d.used = 0, nil
}

// blockStart records a checkpoint if one is due.
func (z *Reader) blockStart() {
	off := z.outBase + int64(z.d.w)
	if n := len(z.cps); n > 0 && off-z.cps[n-1].out < z.span {
		return
	}
	if z.pend.active {
		// Checkpoints closer than WindowSize (spans that small are for
		// tests): the previous window cannot be thinned yet, keep it whole.
		z.storePending(false)
	}
	d := &z.d
	win := d.out[max(d.hist, d.w-WindowSize):d.w]
	z.cps = append(z.cps, checkpoint{in: d.bitPos(), out: off, wlen: len(win)})
	if len(win) == 0 {
		return
	}
	p := &z.pend
	p.active, p.cp = true, len(z.cps)-1
	p.win = append(p.win[:0], win...)
	if cap(p.used) < len(win) {
		p.used = make([]bool, WindowSize)
	}
	p.used = p.used[:len(win)]
	clear(p.used)
	d.used, d.trackLo, d.trackEnd = p.used, d.w-len(win), d.w+WindowSize
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
