package zran

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about invalid compressed data (as
// opposed to data that ends early, io.ErrUnexpectedEOF, or a failing
// source, whose error is passed on).
var ErrCorrupt = errors.New("corrupt gzip data")

const (
	// WindowSize is the deflate history: a back-reference reaches at most
	// this far behind the byte it produces.
	WindowSize = 32 << 10
	maxMatch   = 258
	// outSlack is room past limit that the hot loop's 8- and 16-byte copies may
	// scribble on.
	outSlack = 16
)

type blockState uint8

const (
	stHeader  blockState = iota // at the start of a block
	stStored                    // inside a stored block
	stHuffman                   // inside a Huffman-coded block
	stDone                      // the final block has ended
)

type event uint8

const (
	evFull  event = iota // w reached limit
	evBlock              // at the start of a block; bitPos is its offset
	evEnd                // the final block has ended
)

// inflater decodes one raw deflate stream (RFC 1951) into out.
//
// out[:w] is output; out[hist:w] is the history back-references may reach
// (the window it was started with plus what it produced since), and
// decoding stops when w reaches limit. len(out) >= limit+outSlack.
type inflater struct {
	input
	out   []byte
	w     int
	hist  int
	limit int

	state     blockState
	announced bool // evBlock was returned for the current stHeader
	final     bool
	stored    int // bytes left in the stored block
	copyLen   int // pending back-reference that did not fit before limit
	copyDist  int
	lit, dist *table
	dynLit    table
	dynDist   table
	clen      table
	lens      [maxNumLit + maxNumDist]uint8
	err       error

	// Back-references made while w < trackEnd mark the bytes they copy
	// from in used, indexed from out[trackLo] (see Reader: sparse windows).
	trackEnd int
	trackLo  int
	used     []bool
}

// markUsed records that a back-reference copies out[src:src+n].
func (f *inflater) markUsed(src, n int) {
	lo, hi := src-f.trackLo, min(src-f.trackLo+n, len(f.used))
	for i := max(lo, 0); i < hi; i++ {
		f.used[i] = true
	}
}

// corrupt records and returns an ErrCorrupt error at the current position.
func (f *inflater) corrupt(what string) error {
	f.err = fmt.Errorf("%w: %s at compressed bit %d", ErrCorrupt, what, f.bitPos())
	return f.err
}

// startStream prepares for a deflate stream starting at a block boundary.
func (f *inflater) startStream() {
	f.state, f.announced, f.final = stHeader, false, false
	f.stored, f.copyLen, f.copyDist = 0, 0, 0
	f.err = nil
}

// run decodes until out is full, a block starts or the stream ends.
func (f *inflater) run() (event, error) {
	for f.err == nil {
		switch f.state {
		case stHeader:
			if !f.announced {
				f.announced = true
				return evBlock, nil
			}
			f.announced = false
			f.err = f.blockHeader()
		case stStored:
			if f.w >= f.limit {
				return evFull, nil
			}
			f.err = f.copyStored()
		case stHuffman:
			if f.w >= f.limit {
				return evFull, nil
			}
			f.huffman()
		case stDone:
			return evEnd, nil
		}
	}
	return 0, f.err
}

func (f *inflater) endBlock() {
	if f.final {
		f.state = stDone
	} else {
		f.state = stHeader
	}
}

func (f *inflater) blockHeader() error {
	h, err := f.readBits(3)
	if err != nil {
		return err
	}
	f.final = h&1 == 1
	switch h >> 1 {
	case 0:
		return f.storedHeader()
	case 1:
		f.lit, f.dist = &fixedLit, &fixedDist
	case 2:
		if err := f.dynamicHeader(); err != nil {
			return err
		}
		f.lit, f.dist = &f.dynLit, &f.dynDist
	default:
		return f.corrupt("reserved block type")
	}
	f.state = stHuffman
	return nil
}

func (f *inflater) storedHeader() error {
	f.alignByte()
	v, err := f.readBits(32)
	if err != nil {
		return err
	}
	n, nn := uint16(v), uint16(v>>16)
	if n != ^nn {
		return f.corrupt("stored block length check")
	}
	f.stored = int(n)
	f.state = stStored
	if n == 0 {
		f.endBlock()
	}
	return nil
}

// copyStored copies stored bytes: first those already in the bit buffer,
// then straight from the input buffer.
func (f *inflater) copyStored() error {
	for f.stored > 0 && f.w < f.limit && f.nb >= 8 {
		f.out[f.w] = byte(f.bits)
		f.consume(8)
		f.w++
		f.stored--
	}
	if f.stored > 0 && f.w < f.limit {
		f.bits = 0 // its lookahead is about to be consumed directly
		if f.ip >= len(f.in) && !f.fill() {
			return f.eofErr()
		}
		n := copy(f.out[f.w:min(f.limit, f.w+f.stored)], f.in[f.ip:])
		f.ip += n
		f.w += n
		f.stored -= n
	}
	if f.stored == 0 {
		f.endBlock()
	}
	return nil
}

var codeOrder = [numCLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (f *inflater) dynamicHeader() error {
	v, err := f.readBits(14)
	if err != nil {
		return err
	}
	nlit, ndist, nclen := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlit > maxNumLit || ndist > maxNumDist {
		return f.corrupt("too many length or distance codes")
	}
	var cl [numCLen]uint8
	for i := 0; i < nclen; i++ {
		b, err := f.readBits(3)
		if err != nil {
			return err
		}
		cl[codeOrder[i]] = uint8(b)
	}
	if f.clen.build(cl[:], kindCLen, clenRoot) != nil {
		return f.corrupt("invalid code length code")
	}
	if err := f.readLengths(nlit + ndist); err != nil {
		return err
	}
	if f.dynLit.build(f.lens[:nlit], kindLitLen, litRoot) != nil ||
		f.dynDist.build(f.lens[nlit:nlit+ndist], kindDist, distRoot) != nil {
		return f.corrupt("invalid Huffman code")
	}
	return nil
}

// readLengths decodes n code lengths with the code length code.
func (f *inflater) readLengths(n int) error {
	lens := f.lens[:n]
	for i := 0; i < n; {
		e, err := f.slowSym(&f.clen, clenRoot)
		if err != nil {
			return err
		}
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		rep, nbits, val := 3, uint(2), uint8(0)
		switch sym {
		case 16:
			if i == 0 {
				return f.corrupt("length repeat with no previous length")
			}
			val = lens[i-1]
		case 17:
			nbits = 3
		case 18:
			rep, nbits = 11, 7
		}
		x, err := f.readBits(nbits)
		if err != nil {
			return err
		}
		rep += int(x)
		if i+rep > n {
			return f.corrupt("code lengths overflow")
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	return nil
}

// slowSym decodes one symbol with t, reading input byte by byte.
func (f *inflater) slowSym(t *table, root uint) (uint32, error) {
	f.need(maxCodeLen) // may fall short at the end of the input
	e := t.root[f.bits&(1<<root-1)]
	n := uint(e & 15)
	if e&flagSub != 0 {
		e = t.sub[int(e>>16)+int(f.bits>>root)&(1<<(e>>4&15)-1)]
		n = root + uint(e&15)
	}
	if n > f.nb {
		return 0, f.eofErr()
	}
	if e&flagInvalid != 0 {
		return 0, f.corrupt("invalid Huffman code")
	}
	f.consume(n)
	return e, nil
}

// huffman decodes in a Huffman block: a pending copy first, then the hot
// loop while there is room, then one symbol the slow way.
func (f *inflater) huffman() {
	if f.copyLen > 0 {
		f.copyPending()
		return
	}
	if len(f.in)-f.ip < 8 && f.rerr == nil {
		f.fill()
	}
	f.fast()
	if f.err != nil || f.state != stHuffman || f.w >= f.limit {
		return
	}
	f.err = f.slowSymbol()
}

func (f *inflater) copyPending() {
	n := min(f.copyLen, f.limit-f.w)
	src := f.w - f.copyDist
	for i := range n {
		f.out[f.w+i] = f.out[src+i]
	}
	f.w += n
	f.copyLen -= n
}

// slowSymbol decodes one literal, back-reference or end of block.
func (f *inflater) slowSymbol() error {
	e, err := f.slowSym(f.lit, litRoot)
	if err != nil {
		return err
	}
	switch {
	case e&flagLit != 0:
		f.out[f.w] = byte(e >> 16)
		f.w++
		return nil
	case e&flagEOB != 0:
		f.endBlock()
		return nil
	}
	x, err := f.readBits(uint(e >> 4 & 15))
	if err != nil {
		return err
	}
	length := int(e>>16) + int(x)
	d, err := f.slowSym(f.dist, distRoot)
	if err != nil {
		return err
	}
	x, err = f.readBits(uint(d >> 4 & 15))
	if err != nil {
		return err
	}
	dist := int(d>>16) + int(x)
	if dist > f.w-f.hist {
		return f.corrupt("distance too far back")
	}
	if f.w < f.trackEnd {
		f.markUsed(f.w-dist, length)
	}
	f.copyLen, f.copyDist = length, dist
	f.copyPending()
	return nil
}
