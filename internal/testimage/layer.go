package testimage

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compression is how a layer blob is stored.
type Compression int

const (
	Gzip Compression = iota
	Zstd
	Uncompressed
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// blobLayer is a layer held in memory: compressed blob and tar stream.
type blobLayer struct {
	blob, tar []byte
	digest    v1.Hash
	diffID    v1.Hash
	mt        types.MediaType
}

var _ v1.Layer = (*blobLayer)(nil)

// NewLayer compresses a tar stream into a layer with the OCI media type
// of c (docker selects Docker media types where they exist).
func NewLayer(tarBytes []byte, c Compression, docker bool) (v1.Layer, error) {
	blob, err := compress(tarBytes, c)
	if err != nil {
		return nil, err
	}
	return &blobLayer{
		blob:   blob,
		tar:    tarBytes,
		digest: sha(blob),
		diffID: sha(tarBytes),
		mt:     mediaType(c, docker),
	}, nil
}

// CompressBlob compresses b deterministically as c.
func CompressBlob(b []byte, c Compression) ([]byte, error) { return compress(b, c) }

func compress(b []byte, c Compression) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case Uncompressed:
		return b, nil
	case Gzip:
		w = gzip.NewWriter(&buf) // zero header: no name, no mtime
	case Zstd:
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("creating zstd writer: %w", err)
		}
		w = zw
	default:
		return nil, fmt.Errorf("unknown compression %v", c)
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("compressing layer as %v: %w", c, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer as %v: %w", c, err)
	}
	return buf.Bytes(), nil
}

func mediaType(c Compression, docker bool) types.MediaType {
	switch {
	case c == Gzip && docker:
		return types.DockerLayer
	case c == Uncompressed && docker:
		return types.DockerUncompressedLayer
	case c == Gzip:
		return types.OCILayer
	case c == Zstd:
		return types.OCILayerZStd
	}
	return types.OCIUncompressedLayer
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", s[:])}
}

func (l *blobLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)     { return int64(len(l.blob)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) {
	return l.mt, nil
}
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tar)), nil
}
