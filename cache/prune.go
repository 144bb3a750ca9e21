package cache

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PruneOptions configure Prune.
type PruneOptions struct {
	// All forgets every image (empties index.json) before pruning, which
	// leaves an empty store.
	All bool
	// Untag forgets the images recorded under these REFs (any platform)
	// before pruning.
	Untag []string
	// DryRun reports what would be removed without removing it.
	DryRun bool
	// EvictUnpacked removes unpacked copies of stored images' layers,
	// least recently used first, until those left take at most
	// MaxUnpacked bytes. (In compact mode, copies of layers that their
	// blob can serve are removed anyway.) A running mount keeps reading
	// an evicted copy through its open file; the next use reads the blob
	// through its seek index (compact mode) or rebuilds the copy
	// (unpacked mode).
	EvictUnpacked bool
	MaxUnpacked   int64
}

// PruneReport lists what Prune removed (or would remove).
type PruneReport struct {
	Untagged []string `json:"untagged"` // "REF (platform)" of forgotten index.json entries
	Removed  []string `json:"removed"`  // paths relative to the store, sorted
	Bytes    int64    `json:"bytes"`
	// Evicted are the unpacked copies of stored images' layers removed
	// (also listed in Removed and counted in Bytes).
	Evicted []string `json:"evicted"`
}

// Prune removes the blobs, indexes, seek indexes and unpacked copies no
// image in index.json references, temp files of dead processes and
// per-layer lock files; then unpacked copies the mode does not need, and
// those over PruneOptions.MaxUnpacked. It holds the store lock exclusively, so it waits for running
// pulls and they wait for it.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	l, err := lockFile(ctx, s.path(storeLock), lockExclusive)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	rep := &PruneReport{Untagged: []string{}, Removed: []string{}, Evicted: []string{}}
	// What images being read lazily reference is kept too (pending.go).
	// The marks are read before index.json: an image releases its mark
	// only once index.json lists it, so a mark found free means the index
	// read after it has the image (or its process died).
	pending := s.pendingManifests(opts.DryRun)
	im, err := s.untag(ctx, opts, rep)
	if err != nil {
		return nil, err
	}
	live := &v1.IndexManifest{Manifests: append(slices.Clone(im.Manifests), pending...)}
	keepBlobs, keepDiffIDs, keepTrees := s.referenced(live)
	s.sweep(filepath.Join(blobsDir, "sha256"), keepBlobs, opts.DryRun, rep)
	s.sweep(filepath.Join(indexesDir, "sha256"), keepDiffIDs, opts.DryRun, rep)
	s.sweep(filepath.Join(unpackedDir, "sha256"), keepDiffIDs, opts.DryRun, rep)
	s.sweep(filepath.Join(seekDir, "sha256"), keepBlobs, opts.DryRun, rep)
	s.evictUnpacked(im, opts, rep)
	s.sweep(filepath.Join(treesDir, "sha256"), keepTrees, opts.DryRun, rep)
	s.sweepLazy(opts.DryRun, rep)
	s.sweepTemps(opts.DryRun, rep)
	s.sweepLocks(opts.DryRun)
	sort.Strings(rep.Removed)
	return rep, nil
}

// untag forgets the entries opts names and returns index.json as it
// then stands (on a dry run, as it would stand).
func (s *Store) untag(ctx context.Context, opts PruneOptions, rep *PruneReport) (*v1.IndexManifest, error) {
	drop := map[string]bool{}
	for _, r := range opts.Untag {
		n, err := ParseRef(r, s.insecure)
		if err != nil {
			return nil, err
		}
		drop[n] = true
	}
	var result *v1.IndexManifest
	forget := func(im *v1.IndexManifest) error {
		kept := im.Manifests[:0]
		for _, d := range im.Manifests {
			ref := d.Annotations[AnnotationRefName]
			if opts.All || drop[ref] {
				rep.Untagged = append(rep.Untagged, ref+" ("+d.Annotations[AnnotationPlatform]+")")
				continue
			}
			kept = append(kept, d)
		}
		im.Manifests = kept
		result = im
		return nil
	}
	if opts.DryRun || (!opts.All && len(drop) == 0) {
		im, err := s.readIndex()
		if err != nil {
			return nil, err
		}
		return im, forget(im)
	}
	return result, s.updateIndex(ctx, forget)
}

// referenced collects the blobs and diffIDs of the images in im, and the
// names of the saved trees of their layer stacks (every prefix: mount
// --layers N saves those too). A damaged image keeps what can still be
// read of it.
func (s *Store) referenced(im *v1.IndexManifest) (blobs, diffIDs, trees map[string]bool) {
	blobs, diffIDs, trees = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, d := range im.Manifests {
		blobs[d.Digest.Hex] = true
		blobs[sourceDigest(d).Hex] = true
		m, cf, err := s.readManifestAndConfig(d.Digest)
		if err != nil {
			s.log.Warn("keeping what a damaged image references", "digest", d.Digest, "err", err)
			continue
		}
		blobs[m.Config.Digest.Hex] = true
		for i, l := range m.Layers {
			blobs[l.Digest.Hex] = true
			diffIDs[cf.RootFS.DiffIDs[i].Hex] = true
			trees[treeName(cf.RootFS.DiffIDs[:i+1])] = true
		}
	}
	return blobs, diffIDs, trees
}

// sweep removes the files of dir (relative) whose names are not in keep.
func (s *Store) sweep(dir string, keep map[string]bool, dryRun bool, rep *PruneReport) {
	ents, err := os.ReadDir(s.path(dir))
	if err != nil {
		return
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		rel := filepath.Join(dir, e.Name())
		s.remove(rel, dryRun, rep)
	}
}

func (s *Store) remove(rel string, dryRun bool, rep *PruneReport) {
	size := fileSize(s.path(rel))
	if !dryRun {
		if err := os.Remove(s.path(rel)); err != nil {
			s.log.Warn("removing unreferenced file", "path", rel, "err", err)
			return
		}
	}
	rep.Removed = append(rep.Removed, rel)
	rep.Bytes += size
}

// sweepTemps removes temp files no process holds. Under the exclusive
// store lock no pull is writing, so their age does not matter.
func (s *Store) sweepTemps(dryRun bool, rep *PruneReport) {
	ents, _ := os.ReadDir(s.path(tmpDir))
	for _, e := range ents {
		rel := filepath.Join(tmpDir, e.Name())
		l, ok, err := tryLockFile(s.path(rel), lockExclusive)
		if err != nil || !ok {
			continue
		}
		s.remove(rel, dryRun, rep)
		l.Unlock()
	}
}

// sweepLocks removes per-layer lock files. This is safe only because
// every per-layer lock is taken under the shared store lock, which no one
// else holds now.
func (s *Store) sweepLocks(dryRun bool) {
	if dryRun {
		return
	}
	ents, _ := os.ReadDir(s.path(locksDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "sha256-") && strings.HasSuffix(e.Name(), ".lock") {
			os.Remove(filepath.Join(s.path(locksDir), e.Name()))
		}
	}
}
