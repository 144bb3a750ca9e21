package cache

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// A zstd stream is a sequence of frames, each decodable on its own
// (RFC 8878, section 3.1). The decoder does not say where frames end, so
// the layer pass walks the frame and block headers itself while it hands
// the bytes on: zstdSplitter gives the decoder one frame at a time, and
// zstdStream records where each frame starts (compressed and
// uncompressed offsets). Skippable frames (zstd:chunked keeps its table of
// contents in one) produce no output and start no frame of their own.

const (
	zstdFrameMagic     = 0xFD2FB528
	zstdSkippableMagic = 0x184D2A50 // low 4 bits free
	zstdBlockRaw       = 0
	zstdBlockRLE       = 1
	zstdBlockReserved  = 3
)

var errZstdFrame = errors.New("invalid zstd frame")

// zstdFrameStart is where a frame starts.
type zstdFrameStart struct {
	in  int64 // byte offset in the blob
	out int64 // offset in the uncompressed stream
}

// splitter states: what the next piece of the frame is.
const (
	zsBlock = iota
	zsChecksum
	zsEnd
)

// zstdSplitter reads one frame of br, then io.EOF. begin starts the next
// frame; off counts the bytes handed out, which is the blob offset since
// the stream starts at the blob's first byte.
type zstdSplitter struct {
	br       *bufio.Reader
	off      int64
	left     int64 // bytes of the current piece not yet handed out
	state    int
	checksum bool
}

// begin parses the frame header at the reader's position (a zstd frame
// magic, checked by the caller).
func (s *zstdSplitter) begin() error {
	h, err := s.br.Peek(5)
	if err != nil {
		return fmt.Errorf("%w: header cut short", errZstdFrame)
	}
	fhd := h[4]
	if fhd&0x08 != 0 {
		return fmt.Errorf("%w: reserved header bit set", errZstdFrame)
	}
	single := fhd&0x20 != 0
	size := int64(5)
	if !single {
		size++ // window descriptor
	}
	size += [4]int64{0, 1, 2, 4}[fhd&3] // dictionary id
	fcs := [4]int64{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	s.left, s.state, s.checksum = size+fcs, zsBlock, fhd&0x04 != 0
	return nil
}

// Read hands out the frame's bytes piece by piece and returns io.EOF at
// its end.
func (s *zstdSplitter) Read(p []byte) (int, error) {
	if s.left == 0 {
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n, err := s.br.Read(p[:min(int64(len(p)), s.left)])
	s.left -= int64(n)
	s.off += int64(n)
	if errors.Is(err, io.EOF) {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}

// next parses the next piece: a block (header and body), the checksum, or
// the end of the frame.
func (s *zstdSplitter) next() error {
	switch s.state {
	case zsEnd:
		return io.EOF
	case zsChecksum:
		s.left, s.state = 4, zsEnd
		return nil
	}
	h, err := s.br.Peek(3)
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	typ, size := (bh>>1)&3, int64(bh>>3)
	switch typ {
	case zstdBlockReserved:
		return fmt.Errorf("%w: reserved block type", errZstdFrame)
	case zstdBlockRLE:
		size = 1
	}
	s.left = 3 + size
	if bh&1 != 0 { // last block
		s.state = zsEnd
		if s.checksum {
			s.state = zsChecksum
		}
	}
	return nil
}

// zstdStream is the uncompressed stream of a zstd blob read once, frame by
// frame, recording where the frames start.
type zstdStream struct {
	sp      zstdSplitter
	dec     *zstd.Decoder
	out     int64
	frames  []zstdFrameStart
	inFrame bool
	err     error // sticky
}

func newZstdStream(br *bufio.Reader) (*zstdStream, error) {
	// Layers already decode in parallel; one goroutine-free decoder per
	// layer keeps the pass a single stream.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("opening zstd stream: %w", err)
	}
	return &zstdStream{sp: zstdSplitter{br: br}, dec: dec}, nil
}

func (z *zstdStream) Read(p []byte) (int, error) {
	for z.err == nil {
		if !z.inFrame {
			if z.err = z.startFrame(); z.err != nil {
				break
			}
			continue
		}
		n, err := z.dec.Read(p)
		z.out += int64(n)
		if errors.Is(err, io.EOF) {
			z.inFrame = false
			err = nil
		}
		if n > 0 || err != nil {
			if err != nil {
				z.err = err
			}
			return n, err
		}
	}
	return 0, z.err
}

// startFrame moves to the next data frame, skipping skippable frames. At
// the end of the blob it returns io.EOF, or an error if there was no
// frame at all.
func (z *zstdStream) startFrame() error {
	br := z.sp.br
	for {
		m, err := br.Peek(4)
		if len(m) == 0 && errors.Is(err, io.EOF) {
			if len(z.frames) == 0 {
				return fmt.Errorf("%w: no frame", errZstdFrame)
			}
			return io.EOF
		}
		if len(m) < 4 {
			return fmt.Errorf("%w: %d stray bytes at the end", errZstdFrame, len(m))
		}
		magic := binary.LittleEndian.Uint32(m)
		if magic&^0xF == zstdSkippableMagic {
			if err := z.skip(); err != nil {
				return err
			}
			continue
		}
		if magic != zstdFrameMagic {
			return fmt.Errorf("%w: bad magic %#08x at byte %d", errZstdFrame, magic, z.sp.off)
		}
		if err := z.sp.begin(); err != nil {
			return err
		}
		z.frames = append(z.frames, zstdFrameStart{in: z.sp.off, out: z.out})
		if err := z.dec.Reset(&z.sp); err != nil {
			return err
		}
		z.inFrame = true
		return nil
	}
}

// skip passes over a skippable frame.
func (z *zstdStream) skip() error {
	h, err := z.sp.br.Peek(8)
	if err != nil {
		return fmt.Errorf("%w: skippable frame cut short", errZstdFrame)
	}
	n := 8 + int64(binary.LittleEndian.Uint32(h[4:]))
	k, err := z.sp.br.Discard(int(n))
	z.sp.off += int64(k)
	if err != nil {
		return fmt.Errorf("%w: skippable frame cut short", errZstdFrame)
	}
	return nil
}

func (z *zstdStream) close() { z.dec.Close() }
