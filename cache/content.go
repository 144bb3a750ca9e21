package cache

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

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

// openContent opens what serves a layer, checking its size against the
// layer index's: an uncompressed blob; else the unpacked copy if there is
// one (in any mode: it costs no decoding); else, in compact mode, the
// blob through its seek index. In unpacked mode a missing copy is an
// error, so that Get rebuilds it.
func (s *Store) openContent(digest, diffID v1.Hash, tarSize int64) (layerContent, error) {
	if digest == diffID {
		f, err := openSized(s.blobPath(digest), tarSize)
		if err != nil {
			return nil, err
		}
		return &fileContent{f: f, kind: ContentBlob}, nil
	}
	f, copyErr := openSized(s.unpackedPath(diffID), tarSize)
	if copyErr == nil {
		s.touch(f)
		return &fileContent{f: f, kind: ContentUnpacked}, nil
	}
	if s.mode == ModeUnpacked {
		return nil, copyErr
	}
	x, err := s.servingSeek(digest, diffID, tarSize, copyErr)
	if err != nil {
		return nil, err
	}
	blob, err := os.Open(s.blobPath(digest))
	if err != nil {
		return nil, err
	}
	return newSeekContent(x.spans(blob), blob, s.spans, x.contentKind()), nil
}

// openSized opens path and checks that it holds size bytes.
func openSized(path string, size int64) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		err = fmt.Errorf("%s has %d bytes, the layer index says %d", filepath.Base(path), fi.Size(), size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// touch records that an unpacked copy was used, for eviction by last use
// (Prune's MaxUnpacked): its access time is set explicitly, since mounts
// with noatime or relatime do not keep it.
func (s *Store) touch(f *os.File) {
	now := time.Now()
	if err := os.Chtimes(f.Name(), now, time.Time{}); err != nil {
		s.log.Debug("recording use of unpacked copy", "path", f.Name(), "err", err)
	}
}
