package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ocifs/ocifs/overlay"
)

// lazyImage is what an Image read lazily keeps beside its layers: the
// lazy layers (by position, nil for complete ones), and what recording
// the image in index.json needs once every layer is complete.
type lazyImage struct {
	byPos  []*lazyLayer
	unique []*lazyLayer
	r      *resolved
	sm     *storedManifest
	want   v1.Platform

	ctx    context.Context // canceled by close: stops the background fetch
	cancel context.CancelFunc

	// pending marks the image as being read lazily until it is recorded
	// (pending.go), so that Prune keeps what it references.
	pending *fileLock

	mu       sync.Mutex // guards recorded, and pending's release
	recorded bool
}

// GetLazy returns ref's image without downloading its eStargz layers:
// their TOCs are read with Range requests (and kept), and file bytes are
// fetched chunk by chunk when read, each chunk checked against the TOC,
// whose digest the manifest pins. Other layers (gzip, zstd, eStargz
// without a TOC annotation) are pulled whole first, as Pull does; the
// layers are opened PullOptions.Jobs at a time either way. An
// image complete in the store is returned as Get does; so are images
// from oci: and docker-archive: references, which are local anyway. A
// registry that ignores Range requests gets a single warning and the
// layers are pulled whole. An image without eStargz or zstd:chunked
// layers is pulled as Pull does (in parallel, with PullOptions.Resolved
// and LayerReady).
//
// The image is recorded in index.json only once every layer is complete
// (FetchAll). Until then the store has no record of it, Lookup and Get do
// not find it, and the layer indexes of its lazy layers exist only in
// memory (see lazyIndex for why).
func (s *Store) GetLazy(ctx context.Context, ref string, po PullOptions, lo LazyOptions) (*Image, error) {
	spec, err := parseRef(ref, s.insecure)
	if err != nil {
		return nil, err
	}
	want, explicit := po.platform()
	if img, err := s.Lookup(spec.normalized, want); err == nil {
		if img = po.keepPinned(img); img != nil {
			return img, nil
		}
	}
	if spec.kind == kindLayout || spec.kind == kindArchive {
		return s.Get(ctx, ref, po)
	}
	r, sl, err := s.resolveShared(ctx, spec, want, explicit, po.Pinned)
	if err != nil {
		return nil, err
	}
	defer sl.Unlock()
	if !slices.ContainsFunc(r.manifest.Layers, func(d v1.Descriptor) bool { _, ok := lazySpecOf(d); return ok }) {
		return s.pullResolved(ctx, spec, r, want, po) // nothing to read lazily
	}
	img, err := s.openLazyImage(ctx, r, want, po, lo)
	if err != nil {
		return nil, fmt.Errorf("pulling %s lazily: %w", spec, err)
	}
	return img, nil
}

func (s *Store) openLazyImage(ctx context.Context, r *resolved, want v1.Platform, po PullOptions, lo LazyOptions) (*Image, error) {
	sm, err := ociManifest(r)
	if err != nil {
		return nil, err
	}
	if err := s.storeManifests(r, sm); err != nil { // as Pull: a pinned resolve finds them
		return nil, err
	}
	pending, err := s.holdPending(sm)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	li := &lazyImage{byPos: make([]*lazyLayer, len(r.manifest.Layers)), r: r, sm: sm, want: want, ctx: lctx, cancel: cancel, pending: pending}
	if err := s.openLazyLayers(ctx, r, li, po, lo); err != nil {
		li.close()
		return nil, err
	}
	img := &Image{Ref: r.ref, Digest: r.desc.Digest, Manifest: sm.manifest, Config: r.config, Platform: r.platform, store: s, lazy: li}
	for i, d := range sm.manifest.Layers {
		l, c, err := s.openPosition(li.byPos[i], d, r.config.RootFS.DiffIDs[i])
		if err != nil {
			img.Close()
			return nil, err
		}
		img.Layers = append(img.Layers, l)
		img.content = append(img.content, c)
	}
	if len(li.unique) == 0 {
		if err := li.record(ctx, s); err != nil {
			img.Close()
			return nil, err
		}
	}
	return img, nil
}

// openLazyLayers makes each layer either complete (pulled whole, as Pull
// does) or lazy, po.Jobs layers at a time (default 4): the TOC fetches
// of a many-layer image overlap their round trips, and the whole pulls
// share the link as Pull's do.
func (s *Store) openLazyLayers(ctx context.Context, r *resolved, li *lazyImage, po PullOptions, lo LazyOptions) error {
	reg, _ := r.src.(*registrySource)
	var noRange atomic.Bool
	var warnNoRange sync.Once
	layers := uniqueLayers(r, po.Progress)
	opened := make([]*lazyLayer, len(layers)) // by unique layer, in manifest order
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobsOf(po))
	for k, lp := range layers {
		g.Go(func() error {
			i := lp.positions[0]
			desc, diffID := r.manifest.Layers[i], r.config.RootFS.DiffIDs[i]
			if s.layerComplete(desc.Digest, diffID) == nil {
				lp.report(StateCached)
				return nil
			}
			if sp, ok := lazySpecOf(desc); ok && reg != nil && !noRange.Load() {
				l, err := s.openLazyLayer(gctx, reg.ranges(desc), desc, diffID, sp, lo)
				switch {
				case gctx.Err() != nil: // another layer failed: its error is the one
					if l != nil {
						l.close()
					}
					return gctx.Err()
				case err == nil:
					opened[k] = l
					lp.report(StateDone)
					return nil
				case errors.Is(err, errNoRange):
					noRange.Store(true)
					warnNoRange.Do(func() {
						s.log.Warn("the registry does not serve Range requests; pulling the image whole", "layer", desc.Digest)
					})
				case errors.Is(err, context.Canceled), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotFound), errors.Is(err, ErrLimit):
					return err
				default:
					s.log.Warn("cannot read the layer lazily; pulling it whole", "layer", desc.Digest, "err", err)
				}
			}
			if _, err := s.ensureLayer(gctx, r, lp, PullOptions{}); err != nil {
				return fmt.Errorf("pulling layer %s: %w", desc.Digest, err)
			}
			return nil
		})
	}
	err := g.Wait()
	for k, l := range opened { // also on error: li.close closes them
		if l == nil {
			continue
		}
		for _, p := range layers[k].positions {
			li.byPos[p] = l
		}
		li.unique = append(li.unique, l)
	}
	return err
}

// openPosition opens layer position i: lazily, or from the store.
func (s *Store) openPosition(l *lazyLayer, d v1.Descriptor, diffID v1.Hash) (Layer, layerContent, error) {
	if l == nil {
		return s.openLayer(d, diffID)
	}
	f, err := os.Open(s.lazyPath(d.Digest, ".blob"))
	if err != nil {
		return Layer{}, nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	return Layer{
		Digest: d.Digest, DiffID: diffID, MediaType: d.MediaType, Size: d.Size,
		UncompressedSize: l.x.size, Entries: len(l.x.layer.Entries), Whiteouts: l.x.whiteouts,
		Content: ContentLazy,
	}, newSeekContent(l, f, s.spans, ContentLazy), nil
}

// record writes the manifests and adds the image to index.json, once.
func (li *lazyImage) record(ctx context.Context, s *Store) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	if li.recorded {
		return nil
	}
	r := li.r
	if err := s.writeBlob(bytes.NewReader(r.rawManifest), r.desc.Digest, int64(len(r.rawManifest))); err != nil {
		return err
	}
	if err := s.writeBlob(bytes.NewReader(li.sm.raw), li.sm.desc.Digest, int64(len(li.sm.raw))); err != nil {
		return err
	}
	if _, err := s.record(ctx, r, li.sm, li.want); err != nil {
		return err
	}
	li.recorded = true
	li.pending.Unlock() // index.json references it now
	return nil
}

func (li *lazyImage) close() error {
	li.cancel()
	li.mu.Lock()
	li.pending.Unlock()
	li.mu.Unlock()
	var errs []error
	for _, l := range li.unique {
		errs = append(errs, l.close())
	}
	return errors.Join(errs...)
}

// lazyIndexAt returns layer i's TOC-made index, or nil if the layer is
// not lazy.
func (img *Image) lazyIndexAt(i int) *overlay.Layer {
	if img.lazy == nil || img.lazy.byPos[i] == nil {
		return nil
	}
	return &img.lazy.byPos[i].x.layer
}

// Lazy reports whether some layer of the image is still being read
// lazily from its registry.
func (img *Image) Lazy() bool { return img.lazy != nil && len(img.lazy.unique) > 0 }

// LazyProgress says how far the lazy layers of an image are.
type LazyProgress struct {
	Layers   int   // lazy layers
	Complete int   // of them, fetched whole, verified and stored
	Present  int64 // blob bytes in the cache
	Total    int64 // blob bytes of the lazy layers
	Fetched  int64 // bytes this process received for them
	Requests int64 // Range requests this process sent for them
}

// LazyProgress reports on the image's lazy layers (zero if none).
func (img *Image) LazyProgress() LazyProgress {
	var p LazyProgress
	if img.lazy == nil {
		return p
	}
	for _, l := range img.lazy.unique {
		have, total := l.pb.progress()
		p.Layers++
		p.Present += have
		p.Total += total
		p.Fetched += l.src.fetched.Load()
		p.Requests += l.src.requests.Load()
		if l.committed.Load() {
			p.Complete++
		}
	}
	return p
}

// FetchAll fetches what the image's lazy layers miss, in the background
// of reads (it yields to them), verifies each whole blob (digest, diffID)
// as a pull does, stores the layers as complete, and records the image in
// index.json. It returns when that is done, at the first error (a later
// call resumes), or when ctx is done or the image closed. Reads keep
// going through the image all along.
func (img *Image) FetchAll(ctx context.Context) error {
	li := img.lazy
	if li == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(li.ctx, cancel)
	defer stop()
	for _, l := range li.unique {
		if err := l.fill(ctx); err != nil {
			return fmt.Errorf("fetching layer %s in the background: %w", l.desc.Digest, err)
		}
	}
	return li.record(ctx, img.store)
}

// mergeLazy merges the first n layers of an image with lazy layers,
// without the saved-tree file (see Tree).
func (img *Image) mergeLazy(ctx context.Context, n int) (*overlay.Tree, error) {
	layers, err := img.Indexes(ctx)
	if err != nil {
		return nil, err
	}
	return overlay.Merge(layers[:n])
}
