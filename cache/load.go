package cache

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// loadImage opens the stored image of index.json entry d, checking that
// every piece is present: manifest and config (re-hashed, they are small),
// each layer's blob, index header and content file size. Deep checks of
// layer bytes are Verify's job.
func (s *Store) loadImage(ref string, d v1.Descriptor) (*Image, error) {
	m, cf, err := s.readManifestAndConfig(d.Digest)
	if err != nil {
		return nil, err
	}
	img := &Image{Ref: ref, Digest: sourceDigest(d), Manifest: m, Config: cf, Platform: configPlatform(cf), store: s}
	for i, d := range m.Layers {
		l, c, err := s.openLayer(d, cf.RootFS.DiffIDs[i])
		if err != nil {
			img.Close()
			return nil, err
		}
		img.Layers = append(img.Layers, l)
		img.content = append(img.content, c)
	}
	return img, nil
}

func (s *Store) openLayer(d v1.Descriptor, diffID v1.Hash) (Layer, layerContent, error) {
	if !exists(s.blobPath(d.Digest)) {
		return Layer{}, nil, fmt.Errorf("layer %s: blob is missing", d.Digest)
	}
	h, err := statIndex(s.indexPath(diffID), diffID)
	if err != nil {
		return Layer{}, nil, fmt.Errorf("layer %s: index: %w", d.Digest, err)
	}
	c, err := s.openContent(d.Digest, diffID, h.TarSize)
	if err != nil {
		return Layer{}, nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	return Layer{
		Digest: d.Digest, DiffID: diffID, MediaType: d.MediaType, Size: d.Size,
		UncompressedSize: h.TarSize, Entries: h.Entries, Whiteouts: h.Whiteouts,
		Content: c.Kind(), indexBytes: h.payloadLen,
	}, c, nil
}

// readBlob reads a small stored blob and checks its digest.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("reading stored blob %s: %w", h, err)
	}
	if got := sha256Hash(b); got != h {
		return nil, mismatchf("stored blob %s hashes to %s", h, got)
	}
	return b, nil
}
