package cache

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pendingDir marks the images being read lazily: an image is recorded in
// index.json only once every layer is complete (lazyImage.record), so
// until then nothing in index.json references its manifest, config or the
// layers already completed, and Prune would remove them under a live
// mount. Each lazily opened image has an empty file there named after its
// manifest digest, on which its process holds a shared flock until the
// image is recorded or closed. Prune keeps what a locked mark's manifest
// references and removes the marks no process holds.
const pendingDir = "ocifs/pending"

// holdPending stores the manifest of an image about to be read lazily and
// marks it as pending. The caller holds the store lock shared (as
// GetLazy does), so Prune cannot run between the two.
func (s *Store) holdPending(sm *storedManifest) (*fileLock, error) {
	if err := s.writeBlob(bytes.NewReader(sm.raw), sm.desc.Digest, int64(len(sm.raw))); err != nil {
		return nil, err
	}
	return lockFile(context.Background(), s.path(filepath.Join(pendingDir, sm.desc.Digest.Hex)), syscall.LOCK_SH)
}

// pendingManifests returns descriptors of the manifests of the images a
// live process is reading lazily, and removes (unless dryRun) the marks
// that no process holds any more. Prune holds the store lock exclusive.
func (s *Store) pendingManifests(dryRun bool) []v1.Descriptor {
	dir := s.path(pendingDir)
	ents, _ := os.ReadDir(dir)
	var out []v1.Descriptor
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		l, free, err := tryLockFile(p, syscall.LOCK_EX)
		switch {
		case err != nil:
			continue
		case free:
			if !dryRun {
				os.Remove(p)
			}
			l.Unlock()
			continue
		}
		out = append(out, v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: e.Name()}})
	}
	return out
}
