package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// PullOptions configure Pull and Get.
type PullOptions struct {
	// Platform picks from a multi-platform image; nil means the host's
	// (HostPlatform). A platform given here is also required of a
	// single-platform image.
	Platform *v1.Platform
	// Progress, if set, receives per-layer reports, possibly from several
	// goroutines at once.
	Progress func(Progress)
	// Jobs is how many layers are fetched in parallel (default 4).
	Jobs int
	// TopFirst starts the layer jobs from the top of the stack (the last
	// manifest layer) down, for a caller that serves the layers as they
	// become ready (the top ones decide most paths). The default,
	// manifest order, starts the base layer (usually the largest) first,
	// which finishes a whole pull sooner. A blob listed at several
	// positions is placed by its highest one. Progress reports start in
	// manifest order either way.
	TopFirst bool
	// Resolved, if set, is called once by Pull (and by Get when it
	// pulls) with the image's manifest digest (as the registry serves it,
	// as in Image.Digest), its manifest (as stored: Docker media types
	// converted to OCI, as in Image.Manifest) and config once both are
	// verified and stored, before any layer is fetched. Get calls neither
	// Resolved nor LayerReady when it finds the image complete in the
	// store or repairs it offline: the caller then has the whole Image.
	// GetLazy calls both only for an image without eStargz or
	// zstd:chunked layers, which it pulls as Pull does.
	Resolved func(digest v1.Hash, m *v1.Manifest, cf *v1.ConfigFile)
	// LayerReady, if set, is called once per manifest layer position i
	// as soon as that layer is complete in the store (Store.OpenLayer may
	// open it), including layers found complete; a blob listed at several
	// positions reports them together, highest first. It may be called
	// from several goroutines at once, and the layer's job waits for it.
	// A layer once reported stays complete even if the pull later fails
	// (see OpenLayer for how long its files stay). Both callbacks run
	// under the pull's shared store lock: one that waits for a Prune
	// deadlocks.
	LayerReady func(i int)
	// Pinned, if set, is the manifest digest an earlier resolve of the
	// same ref chose (Image.Digest, or Resolved's digest); the caller
	// vouches that it is the ref's, as the image is recorded under the
	// ref. When the store has that manifest and its config (a pull
	// stores both before any layer), Pull, Get and GetLazy use them and
	// do not ask the registry where the ref points now, which saves those
	// round trips and keeps to that image if the tag has moved meanwhile;
	// Get and GetLazy take the image recorded under the ref only if it is
	// that one. When the store lacks them (a Prune removed them), the ref
	// is resolved as usual.
	Pinned v1.Hash
	// Yield, if set, is asked before each read of a layer's blob from
	// the network, with the layer's highest manifest position. While it
	// returns true, that download slows to a trickle (16 KiB a second,
	// enough to keep its connection alive) and leaves the link to the
	// others: a caller that serves layers as they arrive uses it to
	// fetch first the layer that waiting requests need. It is called
	// from several goroutines at once and must be quick. Reads from
	// local sources (oci:, docker-archive:) and GetLazy's whole pulls
	// of an image that also has lazily read layers never yield.
	Yield func(i int) bool
}

// jobsOf is how many layers po fetches at a time.
func jobsOf(po PullOptions) int {
	if po.Jobs <= 0 {
		return 4
	}
	return po.Jobs
}

func (po PullOptions) platform() (v1.Platform, bool) {
	if po.Platform != nil {
		return *po.Platform, true
	}
	return HostPlatform(), false
}

// Get returns the stored image for ref and the platform without touching
// the network when it is complete in the store, and else Pulls it.
func (s *Store) Get(ctx context.Context, ref string, po PullOptions) (*Image, error) {
	spec, err := parseRef(ref, s.insecure)
	if err != nil {
		return nil, err
	}
	want, _ := po.platform()
	img, err := s.Lookup(spec.normalized, want)
	if err == nil {
		if img = po.keepPinned(img); img != nil {
			return img, nil
		}
		return s.Pull(ctx, ref, po)
	}
	if !errors.Is(err, ErrNotFound) {
		s.log.Debug("stored image is incomplete; repairing it locally", "ref", spec.normalized, "reason", err)
		img, err := s.repairLocal(ctx, spec.normalized, want)
		if err == nil {
			if img = po.keepPinned(img); img != nil {
				return img, nil
			}
		} else {
			s.log.Debug("local repair failed; pulling", "ref", spec.normalized, "reason", err)
		}
	}
	return s.Pull(ctx, ref, po)
}

// keepPinned returns img unless po pins another image (the ref was
// recorded anew since it was resolved): then it closes img and returns
// nil, and the caller pulls the pinned one.
func (po PullOptions) keepPinned(img *Image) *Image {
	if po.Pinned == (v1.Hash{}) || img.Digest == po.Pinned {
		return img
	}
	img.Close()
	return nil
}

// repairLocal rebuilds the missing or bad indexes and unpacked copies of a
// stored image whose blobs are all present, without network.
func (s *Store) repairLocal(ctx context.Context, normalizedRef string, platform v1.Platform) (*Image, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	d, ok := findEntry(im, normalizedRef, platformKey(platform))
	if !ok {
		return nil, errorf(ErrNotFound, "%s is not in the cache", normalizedRef)
	}
	m, cf, err := s.readManifestAndConfig(d.Digest)
	if err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		diffID := cf.RootFS.DiffIDs[i]
		if s.layerComplete(l.Digest, diffID) == nil {
			continue
		}
		if err := s.rebuildIndex(ctx, l.Digest, diffID, l.Size); err != nil {
			return nil, err
		}
	}
	return s.loadImage(normalizedRef, d)
}

// Lookup returns the stored image recorded under the normalized ref and
// platform, if it is complete; ErrNotFound if none is recorded.
func (s *Store) Lookup(normalizedRef string, platform v1.Platform) (*Image, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	d, ok := findEntry(im, normalizedRef, platformKey(platform))
	if !ok {
		return nil, errorf(ErrNotFound, "%s (%s) is not in the cache", normalizedRef, platformKey(platform))
	}
	return s.loadImage(normalizedRef, d)
}

// Pull resolves ref afresh (a registry tag may have moved), fetches the
// blobs the store lacks and indexes every layer that has no valid index,
// then records the image in index.json.
func (s *Store) Pull(ctx context.Context, ref string, po PullOptions) (*Image, error) {
	spec, err := parseRef(ref, s.insecure)
	if err != nil {
		return nil, err
	}
	want, explicit := po.platform()
	r, sl, err := s.resolveShared(ctx, spec, want, explicit, po.Pinned)
	if err != nil {
		return nil, err
	}
	defer sl.Unlock()
	return s.pullResolved(ctx, spec, r, want, po)
}

// pullResolved is Pull once spec is resolved (as r), under the store's
// shared lock; it closes r's source.
func (s *Store) pullResolved(ctx context.Context, spec *refSpec, r *resolved, want v1.Platform, po PullOptions) (*Image, error) {
	defer r.src.close()
	sm, err := ociManifest(r)
	if err != nil {
		return nil, err
	}
	stats, err := s.fetchImage(ctx, r, sm, po)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", spec, err)
	}
	desc, err := s.record(ctx, r, sm, want)
	if err != nil {
		return nil, err
	}
	img, err := s.loadImage(r.ref, desc)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", spec, err)
	}
	img.Stats = stats
	return img, nil
}

// resolveShared takes the store's shared lock, removes stale temp files
// and resolves spec: how Pull and GetLazy start. The caller unlocks.
func (s *Store) resolveShared(ctx context.Context, spec *refSpec, want v1.Platform, explicit bool, pinned v1.Hash) (*resolved, *fileLock, error) {
	sl, err := s.lockShared(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.cleanStaleTemps()
	if pinned != (v1.Hash{}) && spec.kind == kindRegistry {
		if r, ok := s.resolvePinned(ctx, spec, pinned, want, explicit); ok {
			s.log.Debug("resolved from the store", "ref", spec.normalized, "manifest", pinned)
			return r, sl, nil
		}
	}
	r, err := s.resolve(ctx, spec, want, explicit)
	if err != nil {
		sl.Unlock()
		return nil, nil, err
	}
	return r, sl, nil
}

// fetchImage stores the config and the manifests, then every layer (in
// parallel).
func (s *Store) fetchImage(ctx context.Context, r *resolved, sm *storedManifest, po PullOptions) (PullStats, error) {
	if err := s.storeManifests(r, sm); err != nil {
		return PullStats{}, err
	}
	if po.Resolved != nil {
		po.Resolved(r.desc.Digest, sm.manifest, r.config)
	}
	var stats PullStats
	var mu sync.Mutex // guards stats
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobsOf(po))
	layers := uniqueLayers(r, po.Progress)
	for _, lp := range layers {
		lp.report(StateWaiting)
	}
	if po.TopFirst {
		slices.SortStableFunc(layers, func(a, b *layerProgress) int { return cmp.Compare(b.top(), a.top()) })
	}
	for _, lp := range layers {
		g.Go(func() error {
			out, err := s.ensureLayer(gctx, r, lp, po)
			if err != nil {
				return err
			}
			po.ready(lp)
			if out == nil {
				return nil
			}
			mu.Lock()
			stats.LayersIndexed++
			if out.fetched > 0 {
				stats.LayersFetched++
				stats.BytesFetched += out.fetched
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return PullStats{}, err
	}
	return stats, nil
}

// storeManifests stores the config, the manifest as the source gave it
// and its OCI form (the same blob unless converted). Nothing references
// them until the image is recorded: the pull's shared store lock keeps
// Prune away until then.
func (s *Store) storeManifests(r *resolved, sm *storedManifest) error {
	if err := s.writeBlob(bytes.NewReader(r.rawConfig), r.manifest.Config.Digest, int64(len(r.rawConfig))); err != nil {
		return err
	}
	if err := s.writeBlob(bytes.NewReader(r.rawManifest), r.desc.Digest, int64(len(r.rawManifest))); err != nil {
		return err
	}
	return s.writeBlob(bytes.NewReader(sm.raw), sm.desc.Digest, int64(len(sm.raw)))
}

// ready reports every position of a complete layer, highest first.
func (po PullOptions) ready(lp *layerProgress) {
	if po.LayerReady == nil {
		return
	}
	for _, i := range slices.Backward(lp.positions) {
		po.LayerReady(i)
	}
}

// uniqueLayers groups the manifest's layers by blob, so that a blob listed
// twice is processed once.
func uniqueLayers(r *resolved, fn func(Progress)) []*layerProgress {
	byDigest := map[v1.Hash]*layerProgress{}
	var out []*layerProgress
	for i, d := range r.manifest.Layers {
		lp, ok := byDigest[d.Digest]
		if !ok {
			lp = &layerProgress{fn: fn, layers: len(r.manifest.Layers), digest: d.Digest, size: d.Size}
			byDigest[d.Digest] = lp
			out = append(out, lp)
		}
		lp.positions = append(lp.positions, i)
	}
	return out
}

// ensureLayer makes one layer complete under its blob lock. It returns nil
// when the layer already was.
func (s *Store) ensureLayer(ctx context.Context, r *resolved, lp *layerProgress, po PullOptions) (*layerOutcome, error) {
	i := lp.positions[0]
	desc, diffID := r.manifest.Layers[i], r.config.RootFS.DiffIDs[i]
	l, err := lockFile(ctx, s.layerLockPath(desc.Digest), lockExclusive)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if s.layerComplete(desc.Digest, diffID) == nil {
		lp.report(StateCached)
		return nil, nil
	}
	if exists(s.blobPath(desc.Digest)) {
		out, err := s.indexLocalBlob(ctx, desc, diffID, lp)
		if err == nil || !errors.Is(err, errBlobDigest) {
			return out, err
		}
	}
	lp.report(StateFetching)
	out, err := s.runLayerPass(ctx, &layerJob{
		digest: desc.Digest, diffID: diffID, size: desc.Size, writeBlob: true,
		progress: lp.add(StateFetching),
		open: func(ctx context.Context) (io.ReadCloser, error) {
			rc, err := r.src.blob(ctx, desc)
			if _, remote := r.src.(*registrySource); err != nil || po.Yield == nil || !remote {
				return rc, err
			}
			top := lp.top()
			return newYieldReader(ctx, rc, s.net.StallTimeout, func() bool { return po.Yield(top) }), nil
		},
	})
	if err != nil {
		return nil, err
	}
	lp.report(StateDone)
	return out, nil
}

// indexLocalBlob runs the layer pass over the stored blob. A blob that
// fails its digest check is removed (and errBlobDigest returned), so that
// the caller fetches it again.
func (s *Store) indexLocalBlob(ctx context.Context, desc v1.Descriptor, diffID v1.Hash, lp *layerProgress) (*layerOutcome, error) {
	lp.report(StateIndexing)
	out, err := s.runLayerPass(ctx, s.localJob(desc.Digest, diffID, desc.Size, lp.add(StateIndexing)))
	if err == nil {
		lp.report(StateDone)
		return out, nil
	}
	if !errors.Is(err, errBlobDigest) {
		return nil, err
	}
	s.log.Warn("stored blob is corrupt; fetching it again", "layer", desc.Digest, "err", err)
	if rmErr := os.Remove(s.blobPath(desc.Digest)); rmErr != nil {
		return nil, rmErr
	}
	lp.reset()
	return nil, err
}

// layerComplete checks that the blob, a valid index (header, size and
// checksum) and the uncompressed content the store's mode serves from
// are present.
func (s *Store) layerComplete(digest, diffID v1.Hash) error {
	return s.layerCompleteIn(s.mode, digest, diffID)
}

// layerCompleteIn is layerComplete for a mode: in compact mode, a layer
// whose blob can serve it needs no unpacked copy.
func (s *Store) layerCompleteIn(mode Mode, digest, diffID v1.Hash) error {
	if !exists(s.blobPath(digest)) {
		return errorf(ErrNotFound, "blob %s is missing", digest)
	}
	b, err := os.ReadFile(s.indexPath(diffID))
	if err != nil {
		return err
	}
	_, h, err := decodeIndex(b, diffID)
	if err != nil {
		return err
	}
	return s.checkContent(mode, digest, diffID, h.TarSize)
}

// record adds the image to index.json under its ref and platform.
func (s *Store) record(ctx context.Context, r *resolved, sm *storedManifest, want v1.Platform) (v1.Descriptor, error) {
	plat := r.platform
	// Only what the store needs: the source's descriptor may carry more
	// (artifactType), and a pinned resolve has none of it.
	desc := v1.Descriptor{MediaType: sm.desc.MediaType, Size: sm.desc.Size, Digest: sm.desc.Digest}
	desc.Platform = &plat
	desc.Annotations = map[string]string{
		AnnotationRefName:  r.ref,
		AnnotationPlatform: platformKey(want),
	}
	if sm.source != (v1.Hash{}) {
		desc.Annotations[AnnotationSourceDigest] = sm.source.String()
	}
	return desc, s.updateIndex(ctx, func(im *v1.IndexManifest) error {
		putEntry(im, desc)
		return nil
	})
}
