package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
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

// decompressor returns the uncompressed stream of br and a function that
// releases the decoder.
func decompressor(c compression, br *bufio.Reader) (io.Reader, func(), error) {
	switch c {
	case gzipped:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("opening gzip stream: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case zstded:
		// Layers already decode in parallel; one goroutine-free decoder
		// per layer keeps the pass a single stream.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("opening zstd stream: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}
