package zran

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// ErrFormat is wrapped by every error about an encoded index that cannot
// be used: bad magic, unknown version, checksum mismatch, values that
// break the index's invariants.
var ErrFormat = errors.New("invalid zran index")

// The encoding, version 1:
//
//	magic "ZRANIDX" and the version byte
//	uvarint span, size, dataEnd, members, number of checkpoints
//	per checkpoint: uvarint in-delta (bits), out-delta, window length,
//	                compressed window length, then the compressed window
//	CRC-32C (Castagnoli) of everything before it, little-endian
//
// Deltas are from the previous checkpoint (from 0 for the first one).
const (
	magic         = "ZRANIDX"
	formatVersion = 1
	// maxOffset bounds sizes and offsets so that bit offsets fit in int64.
	maxOffset = math.MaxInt64 / 1024
	// maxPerBit bounds the output of one compressed bit: a 258-byte match
	// takes at least a 1-bit length code and a 1-bit distance code.
	maxPerBit = 129
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	_ encoding.BinaryMarshaler   = (*Index)(nil)
	_ encoding.BinaryUnmarshaler = (*Index)(nil)
)

// MarshalBinary encodes x; the encoding is deterministic.
func (x *Index) MarshalBinary() ([]byte, error) {
	n := len(magic) + 1 + 5*binary.MaxVarintLen64 + 4
	for i := range x.cps {
		n += 4*binary.MaxVarintLen64 + len(x.cps[i].win)
	}
	b := make([]byte, 0, n)
	b = append(b, magic...)
	b = append(b, formatVersion)
	for _, v := range []int64{x.span, x.size, x.dataEnd, int64(x.members), int64(len(x.cps))} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	var in, out int64
	for _, c := range x.cps {
		b = binary.AppendUvarint(b, uint64(c.in-in))
		b = binary.AppendUvarint(b, uint64(c.out-out))
		b = binary.AppendUvarint(b, uint64(c.wlen))
		b = binary.AppendUvarint(b, uint64(len(c.win)))
		b = append(b, c.win...)
		in, out = c.in, c.out
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes an index encoded by MarshalBinary, checking the
// checksum and every invariant the decoders rely on. The windows stay
// compressed; one that does not decompress to its length is an error
// when a read first needs it. data is copied.
func (x *Index) UnmarshalBinary(data []byte) error {
	if err := checkFrame(data); err != nil {
		return err
	}
	body := bytes.Clone(data[len(magic)+1 : len(data)-4])
	p := &parser{b: body}
	var y Index
	var n int64
	for _, v := range []*int64{&y.span, &y.size, &y.dataEnd, nil, &n} {
		u := p.int(maxOffset)
		if v == nil {
			y.members = int(min(u, math.MaxInt32))
			continue
		}
		*v = u
	}
	if p.err == nil && (y.span <= 0 || y.members <= 0 || n <= 0 || n > int64(len(body))/4+1) {
		p.fail("bad header values")
	}
	for i := int64(0); i < n && p.err == nil; i++ {
		y.cps = append(y.cps, p.checkpoint(&y))
	}
	if p.err == nil && len(p.b) != 0 {
		p.fail("trailing bytes")
	}
	if p.err == nil {
		last := y.cps[len(y.cps)-1]
		p.checkRatio(y.size-last.out, y.dataEnd*8-last.in)
	}
	if p.err != nil {
		return p.err
	}
	*x = y
	return nil
}

func checkFrame(data []byte) error {
	if len(data) < len(magic)+1+4 || string(data[:len(magic)]) != magic {
		return fmt.Errorf("%w: bad magic", ErrFormat)
	}
	if v := data[len(magic)]; v != formatVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrFormat, v, formatVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrFormat)
	}
	return nil
}

// parser reads uvarints and records the first error.
type parser struct {
	b   []byte
	err error
}

func (p *parser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", ErrFormat, what)
	}
}

// int reads a uvarint that must be at most limit.
func (p *parser) int(limit int64) int64 {
	if p.err != nil {
		return 0
	}
	v, n := binary.Uvarint(p.b)
	if n <= 0 || v > uint64(limit) {
		p.fail("bad varint")
		return 0
	}
	p.b = p.b[n:]
	return int64(v)
}

// checkpoint reads the next checkpoint of y and checks it against the
// previous one: offsets strictly increase, the first is at output 0,
// every one starts before the end of the data, windows fit.
func (p *parser) checkpoint(y *Index) checkpoint {
	var c checkpoint
	first := len(y.cps) == 0
	if !first {
		c = y.cps[len(y.cps)-1]
	}
	din, dout := p.int(maxOffset), p.int(maxOffset)
	c.in, c.out = c.in+din, c.out+dout
	c.wlen = int(p.int(WindowSize))
	zlen := p.int(maxOffset)
	if p.err == nil && zlen > int64(len(p.b)) {
		p.fail("window past the end")
	}
	if p.err != nil {
		return c
	}
	c.win = p.b[:zlen:zlen]
	p.b = p.b[zlen:]
	switch {
	case first && c.out != 0:
		p.fail("first checkpoint not at offset 0")
	case !first && (din == 0 || dout == 0):
		p.fail("checkpoints not increasing")
	case c.in >= y.dataEnd*8 || c.in > maxOffset:
		p.fail("checkpoint past the compressed data")
	case c.out >= y.size && !(first && y.size == 0) || c.out > maxOffset:
		p.fail("checkpoint past the uncompressed data")
	case int64(c.wlen) > c.out || (c.wlen == 0) != (zlen == 0):
		p.fail("bad window length")
	case !first:
		p.checkRatio(dout, din)
	}
	return c
}

// checkRatio rejects a span of out bytes decoded from in bits that no
// deflate stream can produce, so that a forged index cannot make a
// reader allocate for it.
func (p *parser) checkRatio(out, in int64) {
	if out > maxPerBit*in+maxMatch {
		p.fail("span longer than its compressed data can hold")
	}
}
