package tarindex

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// archive/tar hides the sparse map of GNU sparse files and the physical
// size of an entry's data section. The scanner therefore keeps the raw
// header blocks archive/tar read for each entry (scanReader's capture) and
// parses what it needs from them here. Field offsets are those of the
// ustar/GNU header block.

const blockSize = 512

var errCaptureTooLarge = errors.New("tar headers of one entry exceed the capture limit")

// maxCapture bounds the header bytes kept for one entry. archive/tar limits
// each PAX, long-name and sparse-map section to 1 MiB, so real archives stay
// far below this.
const maxCapture = 8 << 20

// scanReader counts the bytes read from r (the position in the
// uncompressed tar stream) and keeps a copy of those at positions >= from,
// which the scanner sets to where the next entry's headers start.
type scanReader struct {
	r        io.Reader
	pos      int64
	from     int64
	capture  []byte
	overflow bool
}

func (c *scanReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		end := c.pos + int64(n)
		if end > c.from && !c.overflow {
			lo := max(c.from-c.pos, 0)
			if len(c.capture)+n-int(lo) > maxCapture {
				c.overflow = true
			} else {
				c.capture = append(c.capture, p[lo:n]...)
			}
		}
		c.pos = end
	}
	return n, err
}

// startCapture discards the previous capture and records from position from.
func (c *scanReader) startCapture(from int64) {
	c.from = from
	c.capture = c.capture[:0]
	c.overflow = false
}

// rawHeader is what the scanner needs from the raw blocks of one entry.
type rawHeader struct {
	block   []byte // the entry's own header block (not PAX/long-name blocks)
	after   []byte // bytes read after it: GNU sparse extension blocks or a PAX 1.0 sparse map
	mainEnd int64  // stream position just after block
	size    int64  // the block's size field
}

// findMainHeader walks the captured blocks, which start at position start,
// past PAX ('x') and GNU long-name ('L', 'K') headers and their data to
// the entry's own header block.
func findMainHeader(capture []byte, start int64) (rawHeader, error) {
	off := 0
	for {
		if off+blockSize > len(capture) {
			return rawHeader{}, fmt.Errorf("header at offset %d: captured %d bytes, want a full block", start+int64(off), len(capture)-off)
		}
		blk := capture[off : off+blockSize]
		size, err := parseNumeric(blk[124:136])
		if err != nil || size < 0 {
			return rawHeader{}, fmt.Errorf("header at offset %d: bad size field %q", start+int64(off), blk[124:136])
		}
		switch blk[156] {
		case 'x', 'L', 'K':
			off += blockSize + int(roundBlock(size))
			continue
		}
		return rawHeader{
			block:   blk,
			after:   capture[off+blockSize:],
			mainEnd: start + int64(off) + blockSize,
			size:    size,
		}, nil
	}
}

func roundBlock(n int64) int64 { return (n + blockSize - 1) &^ (blockSize - 1) }

// parseNumeric parses a numeric header field: octal text, or base-256 when
// the high bit of the first byte is set (GNU and star extension).
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return parseBase256(b)
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 8, 63)
	if err != nil {
		return 0, fmt.Errorf("bad octal field %q", s)
	}
	return int64(v), nil
}

func parseBase256(b []byte) (int64, error) {
	// Two's complement, big-endian, after the marker bit; for negative
	// numbers invert the bytes and use -a-1 == ^a.
	var inv byte
	if b[0]&0x40 != 0 {
		inv = 0xff
	}
	var x uint64
	for i, c := range b {
		c ^= inv
		if i == 0 {
			c &= 0x7f
		}
		if x>>56 != 0 {
			return 0, errors.New("base-256 field overflows int64")
		}
		x = x<<8 | uint64(c)
	}
	if x>>63 != 0 {
		return 0, errors.New("base-256 field overflows int64")
	}
	if inv == 0xff {
		return ^int64(x), nil
	}
	return int64(x), nil
}

// sparseFrag is one data fragment of a sparse file in logical space.
type sparseFrag struct{ off, len int64 }

// oldGNUSparseMap parses the sparse map of an old GNU 'S' header: four
// entries in the header block (offset 386, 24 bytes each; isextended at
// 482), then 21 per extension block (isextended at 504).
func oldGNUSparseMap(rh rawHeader) ([]sparseFrag, error) {
	var frags []sparseFrag
	blk, more := rh.block, rh.after
	entries, n := blk[386:482], 4
	extended := blk[482] != 0
	for {
		for i := 0; i < n; i++ {
			e := entries[i*24 : i*24+24]
			if e[0] == 0 {
				break
			}
			off, err1 := parseNumeric(e[:12])
			ln, err2 := parseNumeric(e[12:])
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("parsing GNU sparse map: %w", err)
			}
			frags = append(frags, sparseFrag{off, ln})
		}
		if !extended {
			return frags, nil
		}
		if len(more) < blockSize {
			return nil, errors.New("parsing GNU sparse map: extension block missing")
		}
		blk, more = more[:blockSize], more[blockSize:]
		entries, n = blk[:504], 21
		extended = blk[504] != 0
	}
}

// paxSparseMap01 parses GNU.sparse.map ("off,len,off,len..."), which
// archive/tar also builds from 0.0's repeated offset/numbytes records.
func paxSparseMap01(s string) ([]sparseFrag, error) {
	if s == "" {
		return nil, nil
	}
	nums := strings.Split(s, ",")
	if len(nums)%2 != 0 {
		return nil, errors.New("parsing GNU.sparse.map: odd number of values")
	}
	return sparsePairs(nums)
}

// paxSparseMap10 parses the PAX 1.0 sparse map at the start of the data
// section: a count, then offset and length pairs, one number per line.
func paxSparseMap10(b []byte) ([]sparseFrag, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, errors.New("parsing GNU sparse 1.0 map: no entry count")
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 32)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("parsing GNU sparse 1.0 map: bad entry count %q", b[:i])
	}
	lines := strings.SplitN(string(b[i+1:]), "\n", int(2*n)+1)
	if int64(len(lines)) < 2*n+1 && n > 0 {
		return nil, errors.New("parsing GNU sparse 1.0 map: truncated")
	}
	return sparsePairs(lines[:2*n])
}

func sparsePairs(nums []string) ([]sparseFrag, error) {
	frags := make([]sparseFrag, 0, len(nums)/2)
	for i := 0; i+1 < len(nums); i += 2 {
		off, err1 := strconv.ParseInt(nums[i], 10, 64)
		ln, err2 := strconv.ParseInt(nums[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("parsing sparse map: bad pair %q,%q", nums[i], nums[i+1])
		}
		frags = append(frags, sparseFrag{off, ln})
	}
	return frags, nil
}
