package cache

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/ocifs/ocifs/internal/zran"
)

// Compression of a layer blob, decided by its first bytes: media types
// lie often enough (docker-archive layers, mislabelled pushes) that they
// are only informative.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
)

func (c compression) String() string {
	return [...]string{"uncompressed", "gzip", "zstd"}[c]
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func sniff(br *bufio.Reader) compression {
	magic, _ := br.Peek(4) // short or failed peeks fall through to tar
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		return gzipped
	case bytes.HasPrefix(magic, zstdMagic):
		return zstded
	}
	return uncompressed
}

// streamDecoder is the uncompressed stream of a blob read once by the
// layer pass.
type streamDecoder interface {
	io.Reader
	// seek returns what the pass learned about where decoding can start
	// (nil for an uncompressed blob). It is valid only once Read has
	// returned io.EOF.
	seek(tarSize int64) (*seekIndex, error)
	close()
}

// decompressor returns the decoder of br's stream: gzip through
// internal/zran (faster than compress/gzip, and it records checkpoints),
// zstd frame by frame, else br itself.
func decompressor(c compression, br *bufio.Reader, span int64) (streamDecoder, error) {
	switch c {
	case gzipped:
		return &gzipStream{Reader: zran.NewReader(br, span)}, nil
	case zstded:
		return newZstdStream(br)
	}
	return plainStream{br}, nil
}

type gzipStream struct{ *zran.Reader }

func (g *gzipStream) seek(tarSize int64) (*seekIndex, error) {
	x, err := g.Index()
	if err != nil {
		return nil, err
	}
	return &seekIndex{tarSize: tarSize, gz: x}, nil
}

func (g *gzipStream) close() {}

func (z *zstdStream) seek(tarSize int64) (*seekIndex, error) {
	if z.err != io.EOF {
		return nil, errors.New("indexing zstd: stream not read to the end")
	}
	return &seekIndex{tarSize: tarSize, zs: groupFrames(z.frames, z.out, z.sp.off)}, nil
}

type plainStream struct{ io.Reader }

func (plainStream) seek(int64) (*seekIndex, error) { return nil, nil }
func (plainStream) close()                         {}
