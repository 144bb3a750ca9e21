package cache

import (
	"bytes"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageInfo describes one index.json entry, for `ocifs cache ls`.
type ImageInfo struct {
	Ref      string  // normalized REF
	Platform string  // the platform it was pulled for (os/arch[/variant])
	Digest   v1.Hash // manifest, as the source gave it
	// Stored is the manifest in the store when it differs from Digest (a
	// Docker manifest stored converted to OCI).
	Stored v1.Hash
	Layers []LayerInfo
	// Problem is empty when every piece is present; else what is not.
	Problem string
}

// LayerInfo describes a stored layer; sizes are those of the files on
// disk (0 when absent). UnpackedSize is 0 for an uncompressed blob, which
// is served as it is.
type LayerInfo struct {
	Digest       v1.Hash         `json:"digest"`
	DiffID       v1.Hash         `json:"diffID"`
	MediaType    types.MediaType `json:"mediaType"`
	Size         int64           `json:"size"`     // blob
	UnpackedSize int64           `json:"unpacked"` // ocifs/unpacked copy
	IndexSize    int64           `json:"index"`    // ocifs/index file
	Entries      int             `json:"entries"`
}

// List describes the stored images in index.json order (by ref, then
// platform). It reads only metadata and never fails on a damaged image:
// the damage is reported in ImageInfo.Problem.
func (s *Store) List() ([]ImageInfo, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	sortIndex(im)
	out := make([]ImageInfo, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		out = append(out, s.describe(d))
	}
	return out, nil
}

func (s *Store) describe(d v1.Descriptor) ImageInfo {
	info := ImageInfo{Ref: d.Annotations[AnnotationRefName], Platform: d.Annotations[AnnotationPlatform], Digest: sourceDigest(d)}
	if info.Digest != d.Digest {
		info.Stored = d.Digest
	}
	m, cf, err := s.readManifestAndConfig(d.Digest)
	if err != nil {
		info.Problem = err.Error()
		return info
	}
	for i, l := range m.Layers {
		li := LayerInfo{Digest: l.Digest, DiffID: cf.RootFS.DiffIDs[i], MediaType: l.MediaType}
		li.Size = fileSize(s.blobPath(l.Digest))
		li.IndexSize = fileSize(s.indexPath(li.DiffID))
		if l.Digest != li.DiffID {
			li.UnpackedSize = fileSize(s.unpackedPath(li.DiffID))
		}
		if h, err := statIndex(s.indexPath(li.DiffID), li.DiffID); err == nil {
			li.Entries = h.Entries
		}
		if err := s.layerComplete(l.Digest, li.DiffID); err != nil && info.Problem == "" {
			info.Problem = "layer " + l.Digest.String() + ": " + err.Error()
		}
		info.Layers = append(info.Layers, li)
	}
	return info
}

// readManifestAndConfig reads and checks a stored manifest and its config.
func (s *Store) readManifestAndConfig(digest v1.Hash) (*v1.Manifest, *v1.ConfigFile, error) {
	raw, err := s.readBlob(digest)
	if err != nil {
		return nil, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, errorf(ErrInvalidImage, "parsing stored manifest %s: %v", digest, err)
	}
	rawCfg, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return nil, nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, nil, errorf(ErrInvalidImage, "parsing stored config %s: %v", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, nil, errorf(ErrInvalidImage, "stored manifest %s: %d layers, %d diffIDs", digest, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	return m, cf, nil
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
