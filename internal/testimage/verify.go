package testimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Verify checks img the way validate.Image does, but for layers of any
// compression (validate assumes gzip): the manifest and config agree, and
// each layer blob hashes to its digest and decompresses (gzip, zstd or
// none, told by magic bytes) to a stream that hashes to its diffID.
func Verify(img v1.Image) error {
	if err := validate.Image(img, validate.Fast); err != nil {
		return fmt.Errorf("validating image structure: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config has %d diffIDs for %d layers", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	for i, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return fmt.Errorf("reading layer %d: %w", i, err)
		}
		if err := verifyLayer(l, d.Digest, cf.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("verifying layer %d (%s): %w", i, d.Digest, err)
		}
	}
	return nil
}

func verifyLayer(l v1.Layer, digest, diffID v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	blobHash := sha256.New()
	br := bufio.NewReader(io.TeeReader(rc, blobHash))
	r, err := decompressor(br)
	if err != nil {
		return err
	}
	tarHash := sha256.New()
	if _, err := io.Copy(tarHash, r); err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	if got := fmt.Sprintf("sha256:%x", blobHash.Sum(nil)); got != digest.String() {
		return fmt.Errorf("blob hashes to %s", got)
	}
	if got := fmt.Sprintf("sha256:%x", tarHash.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("uncompressed stream hashes to %s, diffID is %s", got, diffID)
	}
	return nil
}

func decompressor(br *bufio.Reader) (io.Reader, error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return br, nil
}
