package zran

import (
	"io"
)

const (
	inBufSize = 64 << 10
	// minFill is how much unread input fill tries to hold before
	// returning, so that small reads from the source (a network body)
	// still leave the hot loop a long run.
	minFill = 4 << 10
)

// input is a buffered bit reader over a byte stream. Bits are consumed LSB
// first, as deflate packs them.
//
// Invariant: the bits of the buffer above nb are either zero or the true
// next bits of the stream (the bytes at in[ip:]). The hot loop's refill
// loads 8 bytes at once and keeps such lookahead; ORing the same bytes in
// again later is harmless. Whoever consumes in[ip:] directly (stored
// blocks) must first drain the buffer and zero it.
type input struct {
	src  io.Reader
	buf  []byte // backing array of in
	in   []byte // buffered input; in[ip:] is unread
	ip   int
	base int64 // stream offset of in[0]
	rerr error // sticky error of src (io.EOF at its end)
	bits uint64
	nb   uint
}

func (r *input) reset(src io.Reader, base int64) {
	if r.buf == nil {
		r.buf = make([]byte, inBufSize)
	}
	r.src, r.in, r.ip, r.base, r.rerr = src, r.buf[:0], 0, base, nil
	r.bits, r.nb = 0, 0
}

// bitPos is the stream offset, in bits, of the next unconsumed bit.
func (r *input) bitPos() int64 {
	return (r.base+int64(r.ip))*8 - int64(r.nb)
}

// fill moves the unread input to the front of the buffer and reads more.
// It reports whether any unread input is buffered afterwards.
func (r *input) fill() bool {
	if r.ip > 0 {
		n := copy(r.buf, r.in[r.ip:])
		r.base += int64(r.ip)
		r.in, r.ip = r.buf[:n], 0
	}
	for zeros := 0; r.rerr == nil && len(r.in) < minFill; {
		n, err := r.src.Read(r.buf[len(r.in):cap(r.buf)])
		r.in = r.buf[:len(r.in)+n]
		r.rerr = err
		if n > 0 {
			zeros = 0
			continue
		}
		if zeros++; zeros >= 100 {
			r.rerr = io.ErrNoProgress
		}
	}
	return len(r.in) > 0
}

// need makes sure nb >= n, reading input byte by byte. It reports false
// if the stream ends first; then all the bits left are in the buffer.
func (r *input) need(n uint) bool {
	for r.nb < n {
		if r.ip >= len(r.in) && !r.fill() {
			return false
		}
		r.bits |= uint64(r.in[r.ip]) << r.nb
		r.ip++
		r.nb += 8
	}
	return true
}

func (r *input) consume(n uint) {
	r.bits >>= n & 63
	r.nb -= n
}

// readBits returns the next n (<= 32) bits.
func (r *input) readBits(n uint) (uint32, error) {
	if !r.need(n) {
		return 0, r.eofErr()
	}
	v := uint32(r.bits & (1<<n - 1))
	r.consume(n)
	return v, nil
}

// alignByte drops the bits up to the next byte boundary.
func (r *input) alignByte() {
	r.consume(r.nb & 7)
}

// readByte reads a whole byte; the reader must be byte-aligned.
func (r *input) readByte() (byte, error) {
	v, err := r.readBits(8)
	return byte(v), err
}

// atEOF reports whether no input is left (after alignByte, nb is a
// multiple of 8, so this is exact).
func (r *input) atEOF() bool {
	return r.nb == 0 && r.ip >= len(r.in) && !r.fill()
}

// srcErr is the source's error, if it failed other than by ending.
func (r *input) srcErr() error {
	if r.rerr == io.EOF {
		return nil
	}
	return r.rerr
}

// eofErr is the error for a stream that ends where more was needed.
func (r *input) eofErr() error {
	if r.rerr != nil && r.rerr != io.EOF {
		return r.rerr
	}
	return io.ErrUnexpectedEOF
}
