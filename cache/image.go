package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	"github.com/ocifs/ocifs/overlay"
	"golang.org/x/sync/errgroup"
)

// Image is a complete image in the store, with a file open per layer for
// reading its uncompressed tar stream. Its fields are immutable; it is
// safe for concurrent use.
type Image struct {
	Ref      string  // normalized REF
	Digest   v1.Hash // the manifest's
	Manifest *v1.Manifest
	Config   *v1.ConfigFile
	Platform v1.Platform
	Layers   []Layer
	// Stats describe the Pull that returned the image (zero from Get's
	// local path).
	Stats PullStats

	store   *Store
	content []layerContent               // per layer (see content.go)
	lazy    *lazyImage                   // nil unless some layers are read lazily (lazy.go)
	marked  atomic.Pointer[overlay.Tree] // the first tree markLive saw
}

// Layer describes one layer of an Image.
type Layer struct {
	Digest           v1.Hash // of the blob
	DiffID           v1.Hash // of the uncompressed tar stream
	MediaType        types.MediaType
	Size             int64 // blob size
	UncompressedSize int64 // tar stream size
	Entries          int   // tar entries in the index
	Whiteouts        int   // entries named .wh.*
	// Content says how the layer's bytes are served (a plain file, or its
	// compressed blob through a seek index).
	Content ContentKind

	indexBytes int64 // the index file's payload
}

// indexMemory estimates what the layer's decoded index costs: one
// overlay.Entry per entry plus the payload, which holds its strings.
func (l *Layer) indexMemory() int64 {
	return int64(l.Entries)*tarindex.EntryBytes + l.indexBytes
}

// PullStats say what a Pull did.
type PullStats struct {
	LayersFetched int   // layer blobs downloaded (or copied from a local source)
	LayersIndexed int   // layers scanned, fetched or not
	BytesFetched  int64 // compressed bytes read from the source for layers
}

var _ overlay.LayerReader = (*Image)(nil)

// ReadLayerAt reads the uncompressed tar stream of layer i at off, with
// io.ReaderAt semantics. For a layer served from a plain file it is one
// pread: no lock, no allocation; a compressed layer served from its blob
// goes through the span cache.
func (img *Image) ReadLayerAt(i int, p []byte, off int64) (int, error) {
	if uint(i) >= uint(len(img.content)) {
		return 0, fmt.Errorf("reading layer %d: image has %d layers", i, len(img.content))
	}
	return img.content[i].ReadAt(p, off)
}

// LayerFile returns the open file holding layer i's uncompressed tar
// stream, for splice or passthrough, and false when the layer has no such
// file (it is decoded from its compressed blob as it is read). The file
// belongs to the Image: do not close it, seek it or read it other than
// with pread.
func (img *Image) LayerFile(i int) (*os.File, bool) {
	if uint(i) >= uint(len(img.content)) {
		return nil, false
	}
	f := img.content[i].File()
	return f, f != nil
}

// Close closes the layer files.
func (img *Image) Close() error {
	var errs []error
	for _, c := range img.content {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	img.content = nil
	if img.lazy != nil {
		errs = append(errs, img.lazy.close())
	}
	return errors.Join(errs...)
}

// Indexes loads the layers' persisted indexes, in parallel. An index that
// fails its checks (corrupt, truncated, older version) is rebuilt from the
// local blob, without network.
func (img *Image) Indexes(ctx context.Context) ([]*overlay.Layer, error) {
	if err := img.checkIndexMemory(); err != nil {
		return nil, err
	}
	out := make([]*overlay.Layer, len(img.Layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range img.Layers {
		if l := img.lazyIndexAt(i); l != nil {
			out[i] = l
			continue
		}
		g.Go(func() error {
			l, err := img.store.loadIndex(ctx, &img.Layers[i])
			out[i] = l
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkIndexMemory applies Limits.MaxIndexMemory to the image's layers
// together, from their index headers, before any is decoded.
func (img *Image) checkIndexMemory() error {
	max := img.store.limits.MaxIndexMemory
	if max < 0 {
		return nil
	}
	var total int64
	for i := range img.Layers {
		total += img.Layers[i].indexMemory()
	}
	if total > max {
		return limitErrorf(LimitIndexMemory, max, "loading the indexes of %s: %d layers need about %d bytes of memory, over the limit of %d (%s)",
			img.Ref, len(img.Layers), total, max, LimitIndexMemory)
	}
	return nil
}

func (s *Store) loadIndex(ctx context.Context, l *Layer) (*overlay.Layer, error) {
	b, err := os.ReadFile(s.indexPath(l.DiffID))
	if err == nil {
		idx, _, derr := decodeIndex(b, l.DiffID)
		if derr == nil {
			return idx, nil
		}
		err = derr
	}
	s.log.Warn("rebuilding layer index", "layer", l.Digest, "reason", err)
	if err := s.rebuildIndex(ctx, l.Digest, l.DiffID, l.Size); err != nil {
		return nil, fmt.Errorf("loading index of layer %s: %w", l.Digest, err)
	}
	if b, err = os.ReadFile(s.indexPath(l.DiffID)); err != nil {
		return nil, fmt.Errorf("loading index of layer %s: %w", l.Digest, err)
	}
	idx, _, err := decodeIndex(b, l.DiffID)
	if err != nil {
		return nil, fmt.Errorf("loading index of layer %s: %w", l.Digest, err)
	}
	return idx, nil
}

// rebuildIndex scans the local blob again to rewrite the layer's index
// (and unpacked copy, if missing).
func (s *Store) rebuildIndex(ctx context.Context, digest, diffID v1.Hash, size int64) error {
	sl, err := s.lockShared(ctx)
	if err != nil {
		return err
	}
	defer sl.Unlock()
	ll, err := lockFile(ctx, s.layerLockPath(digest), lockExclusive)
	if err != nil {
		return err
	}
	defer ll.Unlock()
	_, err = s.runLayerPass(ctx, s.localJob(digest, diffID, size, nil))
	return err
}

// localJob is a layer pass over the store's own blob.
func (s *Store) localJob(digest, diffID v1.Hash, size int64, progress func(int64)) *layerJob {
	return &layerJob{
		digest: digest, diffID: diffID, size: size, progress: progress,
		open: func(context.Context) (io.ReadCloser, error) {
			f, err := os.Open(s.blobPath(digest))
			if err != nil {
				return nil, errorf(ErrNotFound, "blob %s is not in the cache", digest)
			}
			return f, nil
		},
	}
}
