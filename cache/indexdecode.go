package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/ocifs/ocifs/overlay"
)

// indexDecoder reads an index payload. It holds the payload as one string
// so that every name, link target and xattr is a substring of it: one
// allocation for all of a layer's strings.
type indexDecoder struct {
	s   string
	off int
	err error
}

var errTruncated = errors.New("truncated")

func (d *indexDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.err = errTruncated
			return 0
		}
		c := d.s[d.off]
		d.off++
		if c < 0x80 {
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.err = errors.New("varint overflows")
	return 0
}

func (d *indexDecoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *indexDecoder) u32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 && d.err == nil {
		d.err = fmt.Errorf("value %d exceeds 32 bits", v)
	}
	return uint32(v)
}

func (d *indexDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.off) {
		d.err = errTruncated
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *indexDecoder) byte1() byte {
	if d.err == nil && d.off >= len(d.s) {
		d.err = errTruncated
	}
	if d.err != nil {
		return 0
	}
	d.off++
	return d.s[d.off-1]
}

// count reads a slice length, bounded by what the rest could hold; after
// an error it is 0, so that no caller allocates for a bad count.
func (d *indexDecoder) count(minItem int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64((len(d.s)-d.off)/minItem) {
		d.err = fmt.Errorf("count %d exceeds the payload", n)
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *indexDecoder) entry(e *overlay.Entry) error {
	e.Name = d.str()
	e.Type = overlay.Type(d.byte1())
	e.Mode, e.UID, e.GID = d.u32(), d.u32(), d.u32()
	e.Size, e.MTime = d.varint(), d.varint()
	e.MTimeNsec = d.u32()
	e.Linkname = d.str()
	e.Devmajor, e.Devminor = d.u32(), d.u32()
	if n := d.count(2); n > 0 {
		e.Xattrs = make([]overlay.Xattr, n)
		for i := range e.Xattrs {
			e.Xattrs[i] = overlay.Xattr{Name: d.str(), Value: d.str()}
		}
	}
	e.Offset = d.varint()
	if n := d.count(3); n > 0 {
		e.Sparse = make([]overlay.Extent, n)
		for i := range e.Sparse {
			e.Sparse[i] = overlay.Extent{Off: d.varint(), Len: d.varint(), TarOff: d.varint()}
		}
	}
	if d.err != nil {
		return d.err
	}
	switch {
	case !e.Type.Valid():
		return fmt.Errorf("bad type %d", e.Type)
	case e.Mode&^0o7777 != 0:
		return fmt.Errorf("bad mode %o", e.Mode)
	case e.Size < 0 || e.Offset < 0 || e.MTimeNsec >= 1e9:
		return errors.New("bad size, offset or mtime")
	}
	return nil
}
