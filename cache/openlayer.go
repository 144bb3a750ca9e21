package cache

import (
	"context"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/overlay"
)

// LayerContent is one layer's uncompressed tar stream, opened on its own
// by OpenLayer: what Image.ReadLayerAt and Image.LayerFile give for one
// position of an Image. It is safe for concurrent use; ReadAt after Close
// fails.
type LayerContent struct {
	// Layer describes the layer as Image.Layers would.
	Layer Layer

	c layerContent
}

var _ io.ReaderAt = (*LayerContent)(nil)

// ReadAt reads the uncompressed tar stream at off, with io.ReaderAt
// semantics (as Image.ReadLayerAt).
func (lc *LayerContent) ReadAt(p []byte, off int64) (int, error) { return lc.c.ReadAt(p, off) }

// File returns the open file holding the stream, as Image.LayerFile
// does: false when the layer is decoded from its compressed blob. The
// file belongs to lc.
func (lc *LayerContent) File() (*os.File, bool) {
	f := lc.c.File()
	return f, f != nil
}

// Close closes the layer's files.
func (lc *LayerContent) Close() error { return lc.c.Close() }

// OpenLayer opens one layer complete in the store, before (or without)
// the image that lists it being recorded: its index, loaded as
// Image.Indexes loads it (one that fails its checks is rebuilt from the
// local blob, offline), and its content, served per the store's mode as
// an Image would serve it. desc and diffID are the layer's descriptor in
// the manifest and its diffID in the config (as PullOptions.Resolved
// gives them); a layer is complete once PullOptions.LayerReady reported
// it. The caller closes the content.
//
// Prune: a Pull holds the store lock shared from resolving the image to
// recording it in index.json, so Prune, which holds it exclusive, waits
// for the pull to end and removes nothing a reported layer uses; once the
// image is recorded, index.json references the layer. After that (or
// after the pull failed, when nothing references the layer) Prune may
// unlink the layer's files, but what OpenLayer returned stays usable: the
// index is in memory, and the content reads through files it holds open,
// as an Image's does. Only a later OpenLayer would then fail.
func (s *Store) OpenLayer(ctx context.Context, desc v1.Descriptor, diffID v1.Hash) (*overlay.Layer, *LayerContent, error) {
	l, c, err := s.openLayer(desc, diffID)
	if err != nil {
		return nil, nil, err
	}
	idx, err := s.loadIndex(ctx, &l)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return idx, &LayerContent{Layer: l, c: c}, nil
}
