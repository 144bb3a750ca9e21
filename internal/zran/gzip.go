package zran

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrTrailingGarbage is wrapped by the error for bytes after the last gzip
// member that are neither another member nor zero padding.
var ErrTrailingGarbage = errors.New("trailing garbage after gzip data")

type gzState uint8

const (
	gzHeader gzState = iota // a member header comes next
	gzBody                  // inside a member's deflate stream
	gzNext                  // after a member: another one, padding or the end
	gzEnd
)

const (
	gzFlagHCRC    = 1 << 1
	gzFlagExtra   = 1 << 2
	gzFlagName    = 1 << 3
	gzFlagComment = 1 << 4
)

// decoder decodes a gzip stream (RFC 1952): members one after another,
// each a deflate stream between a header and a CRC-32/ISIZE trailer.
// With verify set it checks the trailers; that needs whole members, so
// decoders resumed at a checkpoint run without it.
type decoder struct {
	inflater
	gz      gzState
	verify  bool
	crc     uint32
	crcFrom int   // out[crcFrom:w] is not yet summed into crc
	isize   int64 // output of the current member, summed so far
	members int
	dataEnd int64 // byte offset just past the last trailer read
	padding int64 // zero bytes after the last member
}

// startGzip prepares d to read a gzip stream from its first byte.
func (d *decoder) startGzip() {
	d.gz, d.verify, d.members, d.dataEnd, d.padding = gzHeader, true, 0, 0, 0
}

// resumeBody prepares d to decode from a block boundary inside a member.
func (d *decoder) resumeBody() {
	d.gz, d.verify = gzBody, false
	d.startStream()
}

// next decodes until out is full (evFull), a deflate block starts
// (evBlock) or the gzip stream ends (evEnd).
func (d *decoder) next() (event, error) {
	for {
		switch d.gz {
		case gzHeader:
			if err := d.memberHeader(); err != nil {
				return 0, err
			}
			d.hist, d.crcFrom, d.crc, d.isize = d.w, d.w, 0, 0
			d.startStream()
			d.gz = gzBody
		case gzBody:
			ev, err := d.run()
			if err != nil || ev != evEnd {
				return ev, err
			}
			if err := d.trailer(); err != nil {
				return 0, err
			}
			d.gz = gzNext
		case gzNext:
			if err := d.afterMember(); err != nil {
				return 0, err
			}
		case gzEnd:
			return evEnd, nil
		}
	}
}

// sum adds the output not yet summed to the member's CRC and size. It
// runs before output is slid away and at the end of each member.
func (d *decoder) sum() {
	if d.verify && d.crcFrom < d.w {
		d.crc = crc32.Update(d.crc, crc32.IEEETable, d.out[d.crcFrom:d.w])
		d.isize += int64(d.w - d.crcFrom)
	}
	d.crcFrom = d.w
}

// slide keeps the last WindowSize bytes of output at the front of out and
// returns how far they moved.
func (d *decoder) slide() int {
	d.sum()
	shift := max(0, d.w-WindowSize)
	copy(d.out, d.out[shift:d.w])
	d.w -= shift
	d.hist = max(0, d.hist-shift)
	d.trackEnd = max(0, d.trackEnd-shift)
	d.trackLo -= shift
	d.crcFrom = d.w
	return shift
}

func (d *decoder) badHeader(what string) error {
	return fmt.Errorf("%w: gzip header at byte %d: %s", ErrCorrupt, d.bitPos()/8, what)
}

func (d *decoder) memberHeader() error {
	var h [10]byte
	for i := range h {
		b, err := d.readByte()
		if err != nil {
			return err
		}
		h[i] = b
	}
	if h[0] != 0x1f || h[1] != 0x8b {
		return d.badHeader("not gzip")
	}
	if h[2] != 8 {
		return d.badHeader(fmt.Sprintf("compression method %d", h[2]))
	}
	flg := h[3]
	var hcrc uint32
	if flg&gzFlagHCRC != 0 {
		hcrc = crc32.ChecksumIEEE(h[:])
	}
	err := d.headerFields(flg, &hcrc)
	if err != nil {
		return err
	}
	if flg&gzFlagHCRC != 0 {
		v, err := d.readBits(16)
		if err != nil {
			return err
		}
		if uint16(v) != uint16(hcrc) {
			return d.badHeader("header CRC mismatch")
		}
	}
	d.members++
	return nil
}

// headerFields skips FEXTRA, FNAME and FCOMMENT, summing them into hcrc.
func (d *decoder) headerFields(flg byte, hcrc *uint32) error {
	take := func() (byte, error) {
		b, err := d.readByte()
		if err == nil && flg&gzFlagHCRC != 0 {
			*hcrc = crc32.Update(*hcrc, crc32.IEEETable, []byte{b})
		}
		return b, err
	}
	if flg&gzFlagExtra != 0 {
		lo, err := take()
		if err != nil {
			return err
		}
		hi, err := take()
		if err != nil {
			return err
		}
		for n := int(lo) | int(hi)<<8; n > 0; n-- {
			if _, err := take(); err != nil {
				return err
			}
		}
	}
	for _, f := range []byte{gzFlagName, gzFlagComment} {
		if flg&f == 0 {
			continue
		}
		for {
			b, err := take()
			if err != nil {
				return err
			}
			if b == 0 {
				break
			}
		}
	}
	return nil
}

func (d *decoder) trailer() error {
	d.sum()
	d.alignByte()
	crc, err := d.readBits(32)
	if err != nil {
		return err
	}
	size, err := d.readBits(32)
	if err != nil {
		return err
	}
	if d.verify && (crc != d.crc || size != uint32(d.isize)) {
		return fmt.Errorf("%w: gzip member %d: CRC-32 or size mismatch", ErrCorrupt, d.members)
	}
	d.dataEnd = d.bitPos() / 8
	return nil
}

// afterMember decides what follows a member: the end of the input,
// another member (0x1f), or zero padding up to the end of the input.
func (d *decoder) afterMember() error {
	if !d.need(8) {
		d.gz = gzEnd
		return d.srcErr()
	}
	switch byte(d.bits) {
	case 0x1f:
		d.gz = gzHeader
		return nil
	case 0:
		for d.need(8) {
			if byte(d.bits) != 0 {
				return fmt.Errorf("%w: nonzero byte after %d bytes of zero padding at byte %d",
					ErrTrailingGarbage, d.padding, d.bitPos()/8)
			}
			d.consume(8)
			d.padding++
		}
		d.gz = gzEnd
		return d.srcErr()
	}
	return fmt.Errorf("%w: byte %#x at byte %d", ErrTrailingGarbage, byte(d.bits), d.bitPos()/8)
}
