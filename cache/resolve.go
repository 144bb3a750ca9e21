package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// source is where a REF's manifests and blobs come from: a registry, an
// OCI layout directory or a docker-archive tar.
type source interface {
	// root returns the manifest (image or index) the REF names.
	root(ctx context.Context) (v1.Descriptor, []byte, error)
	// manifest returns a manifest an index lists.
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	// blob opens a blob; the caller verifies what it reads.
	blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
	close() error
}

// resolved is an image chosen from a source, with its manifest and config
// verified against their digests.
type resolved struct {
	ref         string
	desc        v1.Descriptor // the manifest's
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	config      *v1.ConfigFile
	platform    v1.Platform
	src         source
}

// maxManifestSize bounds manifests and configs read into memory.
const maxManifestSize = 64 << 20

func (s *Store) openSource(ctx context.Context, spec *refSpec) (source, error) {
	switch spec.kind {
	case kindLayout:
		return openLayoutSource(spec)
	case kindArchive:
		return openArchiveSource(spec)
	}
	return s.newRegistrySource(ctx, spec)
}

// resolve picks the image for want from spec's source. A single-platform
// image is accepted for any platform unless the platform was asked for
// explicitly.
func (s *Store) resolve(ctx context.Context, spec *refSpec, want v1.Platform, explicit bool) (*resolved, error) {
	src, err := s.openSource(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", spec, err)
	}
	r, err := s.resolveFrom(ctx, src, want, explicit)
	if err != nil {
		src.close()
		return nil, fmt.Errorf("resolving %s: %w", spec, err)
	}
	r.ref = spec.normalized
	return r, nil
}

func (s *Store) resolveFrom(ctx context.Context, src source, want v1.Platform, explicit bool) (*resolved, error) {
	desc, raw, err := src.root(ctx)
	if err != nil {
		return nil, err
	}
	for depth := 0; ; depth++ {
		if err := checkDigest("manifest", desc, raw); err != nil {
			return nil, err
		}
		desc.MediaType = manifestMediaType(desc.MediaType, raw)
		if !desc.MediaType.IsIndex() {
			break
		}
		if depth == 2 {
			return nil, errorf(ErrInvalidImage, "indexes nested more than twice")
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, errorf(ErrInvalidImage, "parsing index %s: %v", desc.Digest, err)
		}
		if desc, err = choosePlatform(im, want); err != nil {
			return nil, err
		}
		if raw, err = src.manifest(ctx, desc); err != nil {
			return nil, err
		}
	}
	r := &resolved{desc: desc, rawManifest: raw, src: src}
	if err := r.parseManifest(); err != nil {
		return nil, err
	}
	if err := r.readConfig(ctx); err != nil {
		return nil, err
	}
	return r, r.checkPlatform(want, explicit)
}

func (r *resolved) checkPlatform(want v1.Platform, explicit bool) error {
	r.platform = configPlatform(r.config)
	if explicit && !platformMatches(r.platform, want) {
		return errorf(ErrNoPlatform, "image is for %s, not %s", platformKey(r.platform), platformKey(want))
	}
	return nil
}

// resolvePinned is resolve without asking the source where the ref
// points: the image is the one whose manifest digest is pinned, read from
// the store with its config, as an earlier resolve of the same ref stored
// them (a pull stores both before any layer). ok is false when the store
// lacks either blob or they do not make an image for want; the caller
// then resolves as usual. The source is opened for the layers.
func (s *Store) resolvePinned(ctx context.Context, spec *refSpec, pinned v1.Hash, want v1.Platform, explicit bool) (r *resolved, ok bool) {
	raw, err := readSmallFile(s.blobPath(pinned))
	if err != nil {
		s.log.Debug("the pinned manifest is not in the store; resolving", "manifest", pinned, "err", err)
		return nil, false
	}
	desc := v1.Descriptor{Digest: pinned, Size: int64(len(raw))}
	if checkDigest("manifest", desc, raw) != nil {
		return nil, false
	}
	desc.MediaType = manifestMediaType("", raw)
	if desc.MediaType.IsIndex() {
		return nil, false
	}
	r = &resolved{ref: spec.normalized, desc: desc, rawManifest: raw}
	if r.parseManifest() != nil {
		return nil, false
	}
	cfg, err := readSmallFile(s.blobPath(r.manifest.Config.Digest))
	if err == nil {
		err = r.setConfig(cfg)
	}
	if err == nil {
		err = r.checkPlatform(want, explicit)
	}
	if err != nil {
		s.log.Debug("the pinned manifest's config does not serve; resolving", "manifest", pinned, "err", err)
		return nil, false
	}
	if r.src, err = s.openSource(ctx, spec); err != nil {
		return nil, false
	}
	return r, true
}

// readSmallFile reads a stored manifest or config, up to
// maxManifestSize.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err == nil && len(raw) > maxManifestSize {
		err = fmt.Errorf("%s: larger than %d bytes", path, maxManifestSize)
	}
	return raw, err
}

func (r *resolved) parseManifest() error {
	switch r.desc.MediaType {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return errorf(ErrInvalidImage, "manifest %s is docker schema 1, which is not supported", r.desc.Digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(r.rawManifest))
	if err != nil {
		return errorf(ErrInvalidImage, "parsing manifest %s: %v", r.desc.Digest, err)
	}
	if m.SchemaVersion != 2 {
		return errorf(ErrInvalidImage, "manifest %s has schema version %d, want 2", r.desc.Digest, m.SchemaVersion)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 || d.Size < 0 {
			return errorf(ErrInvalidImage, "manifest %s: unsupported or malformed descriptor %s (size %d)", r.desc.Digest, d.Digest, d.Size)
		}
	}
	r.manifest = m
	return nil
}

func (r *resolved) readConfig(ctx context.Context) error {
	d := r.manifest.Config
	if d.Size > maxManifestSize {
		return errorf(ErrInvalidImage, "config %s is too large (%d bytes)", d.Digest, d.Size)
	}
	rc, err := r.src.blob(ctx, d)
	if err != nil {
		return fmt.Errorf("fetching config %s: %w", d.Digest, classifyRemote(err))
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return fmt.Errorf("fetching config %s: %w", d.Digest, classifyRemote(err))
	}
	return r.setConfig(raw)
}

// setConfig checks the config's bytes against the manifest and keeps it.
func (r *resolved) setConfig(raw []byte) error {
	d := r.manifest.Config
	if err := checkDigest("config", d, raw); err != nil {
		return err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return errorf(ErrInvalidImage, "parsing config %s: %v", d.Digest, err)
	}
	if n, m := len(cf.RootFS.DiffIDs), len(r.manifest.Layers); n != m {
		return errorf(ErrInvalidImage, "manifest %s lists %d layers but its config %d diffIDs", r.desc.Digest, m, n)
	}
	for _, id := range cf.RootFS.DiffIDs {
		if id.Algorithm != "sha256" || len(id.Hex) != 64 {
			return errorf(ErrInvalidImage, "config %s: unsupported diffID %s", d.Digest, id)
		}
	}
	r.rawConfig, r.config = raw, cf
	return nil
}

// checkDigest verifies that raw is what d describes.
func checkDigest(what string, d v1.Descriptor, raw []byte) error {
	sum := sha256.Sum256(raw)
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if d.Digest.Algorithm != "sha256" {
		return errorf(ErrInvalidImage, "%s %s: unsupported digest algorithm", what, d.Digest)
	}
	if got != d.Digest {
		return mismatchf("%s %s: content hashes to %s", what, d.Digest, got)
	}
	if d.Size > 0 && int64(len(raw)) != d.Size {
		return mismatchf("%s %s: got %d bytes, want %d", what, d.Digest, len(raw), d.Size)
	}
	return nil
}

// manifestMediaType trusts the descriptor's media type, else the
// manifest's own mediaType field, else its shape.
func manifestMediaType(mt types.MediaType, raw []byte) types.MediaType {
	if mt != "" {
		return mt
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if probe.MediaType != "" {
			return probe.MediaType
		}
		if probe.Manifests != nil {
			return types.OCIImageIndex
		}
	}
	return types.OCIManifestSchema1
}
