package zran

import (
	"errors"
	"math/bits"
)

// A decode table maps the next root bits of input (LSB first, as deflate
// packs codes bit-reversed) to an entry:
//
//	bits 0-3   bits to consume: the code length, or rootBits for a subtable link,
//	           or the code length minus rootBits inside a subtable
//	bits 4-7   extra bits that follow (lengths, distances), or a link's subtable bits
//	bits 8-11  flags
//	bits 16-31 value: literal byte, length or distance base, or subtable offset
//
// Codes longer than the root go through one subtable. Entries no code maps
// to (empty and single-code tables) are flagInvalid, so decoding them is an
// error, as in compress/flate.
const (
	flagLit     = 1 << 8
	flagEOB     = 1 << 9
	flagSub     = 1 << 10
	flagInvalid = 1 << 11

	litRoot  = 10
	distRoot = 8
	clenRoot = 7

	maxCodeLen = 15
	numLitLen  = 288 // symbols the fixed code defines; 286 and 287 are invalid
	maxNumLit  = 286 // most HLIT allows
	maxNumDist = 30
	numCLen    = 19
)

var errBadCode = errors.New("invalid Huffman code lengths")

// table is a two-level decode table. root is indexed by the low rootBits
// of the bit buffer; sub holds the subtables.
type table struct {
	root [1 << litRoot]uint32
	sub  []uint32
}

type symKind uint8

const (
	kindLitLen symKind = iota
	kindDist
	kindCLen
)

var (
	lengthBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// symEntry is the entry for symbol s of the given kind, without its length.
func symEntry(kind symKind, s int) uint32 {
	switch kind {
	case kindLitLen:
		switch {
		case s < 256:
			return uint32(s)<<16 | flagLit
		case s == 256:
			return flagEOB
		case s < maxNumLit:
			i := s - 257
			return uint32(lengthBase[i])<<16 | uint32(lengthExtra[i])<<4
		}
		return flagInvalid
	case kindDist:
		if s < maxNumDist {
			return uint32(distBase[s])<<16 | uint32(distExtra[s])<<4
		}
		return flagInvalid
	}
	return uint32(s) << 16
}

// build fills t from code lengths with the given root width. It accepts
// exactly what compress/flate accepts: complete codes, the empty code and
// the degenerate code of one symbol of length 1.
func (t *table) build(lengths []uint8, kind symKind, root uint) error {
	var count [maxCodeLen + 1]int
	maxLen := 0
	for _, n := range lengths {
		count[n]++
		if int(n) > maxLen {
			maxLen = int(n)
		}
	}
	count[0] = 0
	var next [maxCodeLen + 2]int
	code := 0
	for n := 1; n <= maxLen; n++ {
		code = (code + count[n-1]) << 1
		next[n] = code
	}
	total := 0
	if maxLen > 0 {
		total = next[maxLen] + count[maxLen]
	}
	if maxLen > 0 && total != 1<<maxLen && !(total == 1 && maxLen == 1) {
		return errBadCode
	}
	rootSize := 1 << root
	for i := range t.root[:rootSize] {
		t.root[i] = flagInvalid
	}
	t.sub = t.sub[:0]
	if maxLen > int(root) {
		t.linkSubtables(lengths, next, root)
	}
	for s, n := range lengths {
		if n == 0 {
			continue
		}
		c := next[n]
		next[n]++
		rev := int(bits.Reverse16(uint16(c)) >> (16 - n))
		e := symEntry(kind, s)
		if uint(n) <= root {
			e |= uint32(n)
			for i := rev; i < rootSize; i += 1 << n {
				t.root[i] = e
			}
			continue
		}
		link := t.root[rev&(rootSize-1)]
		off, subBits := int(link>>16), int(link>>4&15)
		e |= uint32(uint(n) - root)
		for i := rev >> root; i < 1<<subBits; i += 1 << (uint(n) - root) {
			t.sub[off+i] = e
		}
	}
	return nil
}

// linkSubtables makes one subtable per root prefix shared by codes longer
// than root, sized for the longest of them, and links it from the root.
func (t *table) linkSubtables(lengths []uint8, next [maxCodeLen + 2]int, root uint) {
	var subBits [1 << litRoot]uint8
	mask := 1<<root - 1
	for _, n := range lengths {
		if uint(n) <= root {
			continue
		}
		c := next[n]
		next[n]++
		rev := int(bits.Reverse16(uint16(c)) >> (16 - n))
		p := rev & mask
		if b := n - uint8(root); b > subBits[p] {
			subBits[p] = b
		}
	}
	for p := 0; p <= mask; p++ {
		b := subBits[p]
		if b == 0 {
			continue
		}
		off := len(t.sub)
		t.root[p] = uint32(off)<<16 | uint32(b)<<4 | flagSub | uint32(root)
		for i := 0; i < 1<<b; i++ {
			t.sub = append(t.sub, flagInvalid)
		}
	}
}

var fixedLit, fixedDist table

func init() {
	var l [numLitLen]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	if err := fixedLit.build(l[:], kindLitLen, litRoot); err != nil {
		panic(err)
	}
	var d [32]uint8
	for i := range d {
		d[i] = 5
	}
	if err := fixedDist.build(d[:], kindDist, distRoot); err != nil {
		panic(err)
	}
}
