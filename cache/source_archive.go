package cache

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// archiveSource reads `docker save` output (docker-archive:FILE[:NAME]).
// The archive has no manifest, so one is made: an OCI manifest whose
// layers are the archive's layer files as they are. An uncompressed layer
// keeps the OCI uncompressed media type with digest == diffID (no
// recompression); a compressed one is hashed once to learn its digest.
type archiveSource struct {
	f       *os.File
	members map[string]member
	desc    v1.Descriptor
	raw     []byte // the manifest made for the image
	config  []byte
	layers  map[v1.Hash]member
}

// member is a regular file's data in the archive.
type member struct{ off, size int64 }

// archiveManifest is one entry of the archive's manifest.json.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func openArchiveSource(spec *refSpec) (src *archiveSource, err error) {
	f, err := os.Open(spec.path)
	if err != nil {
		return nil, errorf(ErrNotFound, "opening the archive: %v", unwrapPathError(err))
	}
	a := &archiveSource{f: f, layers: map[v1.Hash]member{}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if a.members, err = indexArchive(f); err != nil {
		return nil, errorf(ErrInvalidImage, "reading docker archive %s: %v", spec.path, err)
	}
	am, err := a.pickManifest(spec.tag)
	if err != nil {
		return nil, err
	}
	if err := a.makeManifest(am); err != nil {
		return nil, fmt.Errorf("reading docker archive %s: %w", spec.path, err)
	}
	return a, nil
}

// indexArchive lists the regular files of the tar f with their data
// offsets, resolving symlinks (docker save links repeated layers).
func indexArchive(f *os.File) (map[string]member, error) {
	tr := tar.NewReader(f) // f is an io.Seeker: Next seeks over data
	members := map[string]member{}
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := path.Clean(h.Name)
		switch h.Typeflag {
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			members[name] = member{off, h.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			links[name] = path.Clean(target)
		}
	}
	for n, t := range links {
		for i := 0; i < 8; i++ { // bounded: a cycle resolves to nothing
			if next, ok := links[t]; ok {
				t = next
			}
		}
		if m, ok := members[t]; ok {
			members[n] = m
		}
	}
	return members, nil
}

func (a *archiveSource) read(name string, limit int64) ([]byte, error) {
	m, ok := a.members[path.Clean(name)]
	if !ok {
		return nil, errorf(ErrInvalidImage, "%s is missing from the archive", name)
	}
	if m.size > limit {
		return nil, errorf(ErrInvalidImage, "%s is too large (%d bytes)", name, m.size)
	}
	b := make([]byte, m.size)
	_, err := a.f.ReadAt(b, m.off)
	return b, err
}

func (a *archiveSource) pickManifest(tag string) (*archiveManifest, error) {
	b, err := a.read("manifest.json", maxManifestSize)
	if err != nil {
		return nil, err
	}
	var ams []archiveManifest
	if err := json.Unmarshal(b, &ams); err != nil {
		return nil, errorf(ErrInvalidImage, "parsing manifest.json: %v", err)
	}
	var tags []string
	for i, am := range ams {
		for _, t := range am.RepoTags {
			if tag != "" && sameTag(t, tag) {
				return &ams[i], nil
			}
			tags = append(tags, t)
		}
	}
	switch {
	case tag == "" && len(ams) == 1:
		return &ams[0], nil
	case len(ams) == 0:
		return nil, errorf(ErrNotFound, "the archive holds no images")
	case tag == "":
		return nil, errorf(ErrNotFound, "the archive holds %d images; add :NAME, one of: %s", len(ams), strings.Join(tags, ", "))
	}
	return nil, errorf(ErrNotFound, "no image tagged %q in the archive; tags: %s", tag, strings.Join(tags, ", "))
}

// sameTag compares tags as docker does: alpine means
// docker.io/library/alpine:latest.
func sameTag(a, b string) bool {
	if a == b {
		return true
	}
	ta, err1 := name.NewTag(a)
	tb, err2 := name.NewTag(b)
	return err1 == nil && err2 == nil && ta.Name() == tb.Name()
}

func (a *archiveSource) makeManifest(am *archiveManifest) error {
	cfg, err := a.read(am.Config, maxManifestSize)
	if err != nil {
		return err
	}
	a.config = cfg
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: sha256Hash(cfg)},
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfg))
	if err != nil {
		return errorf(ErrInvalidImage, "parsing config %s: %v", am.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(am.Layers) {
		return errorf(ErrInvalidImage, "manifest.json lists %d layers but the config %d diffIDs", len(am.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range am.Layers {
		d, err := a.layerDescriptor(l, cf.RootFS.DiffIDs[i])
		if err != nil {
			return err
		}
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	a.raw = raw
	a.desc = v1.Descriptor{MediaType: m.MediaType, Size: int64(len(raw)), Digest: sha256Hash(raw)}
	return nil
}

func (a *archiveSource) layerDescriptor(file string, diffID v1.Hash) (v1.Descriptor, error) {
	m, ok := a.members[path.Clean(file)]
	if !ok {
		return v1.Descriptor{}, errorf(ErrInvalidImage, "layer %s is missing from the archive", file)
	}
	sec := io.NewSectionReader(a.f, m.off, m.size)
	d := v1.Descriptor{Size: m.size}
	switch sniff(bufio.NewReader(sec)) {
	case uncompressed:
		// The scan checks the content against the digest, which here is
		// the diffID: a lying config fails the pull.
		d.MediaType, d.Digest = types.OCIUncompressedLayer, diffID
	case gzipped:
		d.MediaType = types.OCILayer
	case zstded:
		d.MediaType = types.OCILayerZStd
	}
	if d.Digest == (v1.Hash{}) {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(a.f, m.off, m.size)); err != nil {
			return v1.Descriptor{}, fmt.Errorf("hashing layer %s: %w", file, err)
		}
		d.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	}
	a.layers[d.Digest] = m
	return d, nil
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func (a *archiveSource) root(context.Context) (v1.Descriptor, []byte, error) {
	return a.desc, a.raw, nil
}

func (a *archiveSource) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return nil, errorf(ErrNotFound, "manifest %s is not in the archive", d.Digest)
}

func (a *archiveSource) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if d.Digest == a.desc.Digest {
		return io.NopCloser(bytes.NewReader(a.raw)), nil
	}
	if d.Digest == sha256Hash(a.config) {
		return io.NopCloser(bytes.NewReader(a.config)), nil
	}
	m, ok := a.layers[d.Digest]
	if !ok {
		return nil, errorf(ErrNotFound, "blob %s is not in the archive", d.Digest)
	}
	return io.NopCloser(io.NewSectionReader(a.f, m.off, m.size)), nil
}

func (a *archiveSource) close() error { return a.f.Close() }
