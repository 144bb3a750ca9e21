package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on index.json entries.
const (
	// AnnotationRefName is the OCI annotation that names an entry; it holds
	// the normalized REF, so `skopeo inspect oci:CACHE:REF` finds registry
	// images.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationPlatform holds the platform the entry was pulled for
	// (os/arch[/variant]), which Get matches; it can differ from the
	// descriptor's platform when a single-platform image was pulled for
	// the host's default.
	AnnotationPlatform = "com.github.ocifs.platform"
)

// readIndex reads index.json. Writers replace it by rename, so no lock is
// needed to read a consistent copy.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.path(indexFile))
	if errors.Is(err, os.ErrNotExist) {
		return emptyIndex(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", indexFile, err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", s.path(indexFile), err)
	}
	return &im, nil
}

func emptyIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

// updateIndex applies fn to index.json under the index lock and writes the
// result atomically, with entries in a deterministic order.
func (s *Store) updateIndex(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	l, err := lockFile(ctx, s.path(indexLock), syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.Unlock()
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := fn(im); err != nil {
		return err
	}
	sortIndex(im)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(im); err != nil {
		return err
	}
	if err := s.writeFileAtomic(s.path(indexFile), buf.Bytes()); err != nil {
		return fmt.Errorf("updating %s: %w", indexFile, err)
	}
	return nil
}

func sortIndex(im *v1.IndexManifest) {
	if im.Manifests == nil {
		im.Manifests = []v1.Descriptor{}
	}
	sort.SliceStable(im.Manifests, func(i, j int) bool {
		a, b := im.Manifests[i], im.Manifests[j]
		if ra, rb := a.Annotations[AnnotationRefName], b.Annotations[AnnotationRefName]; ra != rb {
			return ra < rb
		}
		if pa, pb := a.Annotations[AnnotationPlatform], b.Annotations[AnnotationPlatform]; pa != pb {
			return pa < pb
		}
		return a.Digest.String() < b.Digest.String()
	})
}

// putEntry records desc as the image for (ref, platform), replacing an
// older entry for the same pair.
func putEntry(im *v1.IndexManifest, desc v1.Descriptor) {
	ref, plat := desc.Annotations[AnnotationRefName], desc.Annotations[AnnotationPlatform]
	kept := im.Manifests[:0]
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] == ref && d.Annotations[AnnotationPlatform] == plat {
			continue
		}
		kept = append(kept, d)
	}
	im.Manifests = append(kept, desc)
}

// findEntry returns the entry for (ref, platform).
func findEntry(im *v1.IndexManifest, ref, platform string) (v1.Descriptor, bool) {
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] == ref && d.Annotations[AnnotationPlatform] == platform {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}
