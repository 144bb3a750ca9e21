package cache

import (
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerContent serves one layer's uncompressed tar stream. An Image holds
// one per layer, chosen when the image is opened (see openContent); what
// is above the cache reads through Image.ReadLayerAt and never learns
// which kind serves it.
//
// Implementations are safe for concurrent ReadAt from any number of
// goroutines, and ReadAt has io.ReaderAt semantics (io.EOF with a short
// count at the end of the stream). Close releases the files; ReadAt after
// Close returns an error, never garbage.
type layerContent interface {
	io.ReaderAt
	io.Closer
	// File returns the plain file that holds the whole stream from byte 0,
	// for splice or passthrough, or nil when the stream is decoded on
	// the fly (the caller must then read with ReadAt).
	File() *os.File
	// Kind says how the layer is served (ContentKind values), for
	// `ocifs cache ls` and logs.
	Kind() ContentKind
}

// ContentKind says how a layer's uncompressed bytes are served.
type ContentKind string

// Content kinds.
const (
	// ContentBlob: the blob is an uncompressed tar and is read as it is.
	ContentBlob ContentKind = "blob"
	// ContentUnpacked: a decompressed copy of the blob under ocifs/unpacked.
	ContentUnpacked ContentKind = "unpacked"
	// ContentGzip: the gzip blob, decoded at random through the
	// checkpoints of its seek index (internal/zran).
	ContentGzip ContentKind = "gzip-seek"
	// ContentZstd: the zstd blob, decoded frame by frame through its seek
	// index (a list of frame boundaries).
	ContentZstd ContentKind = "zstd-frames"
)

// fileContent is a plain file holding the uncompressed stream: the
// unpacked copy, or an uncompressed blob. ReadAt is one pread.
type fileContent struct {
	f    *os.File
	kind ContentKind
}

var _ layerContent = (*fileContent)(nil)

func (c *fileContent) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }
func (c *fileContent) Close() error                            { return c.f.Close() }
func (c *fileContent) File() *os.File                          { return c.f }
func (c *fileContent) Kind() ContentKind                       { return c.kind }

// kindOfFile says which plain file serves a layer (see contentPath).
func kindOfFile(digest, diffID v1.Hash) ContentKind {
	if digest == diffID {
		return ContentBlob
	}
	return ContentUnpacked
}
