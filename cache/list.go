package cache

import (
	"bytes"
	"fmt"
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
	// Disk is what the image's files take (files shared with other
	// images are counted for each).
	Disk DiskUsage
	// Problem is empty when every piece is present; else what is not.
	Problem string
}

// DiskUsage is bytes on disk, by kind of file.
type DiskUsage struct {
	Blobs    int64 `json:"blobs"`    // layers, manifests, configs
	Indexes  int64 `json:"indexes"`  // layer indexes
	Seek     int64 `json:"seek"`     // seek indexes of compressed blobs
	Unpacked int64 `json:"unpacked"` // decompressed copies
	Trees    int64 `json:"trees"`    // saved merged trees
	Lazy     int64 `json:"lazy"`     // layers being read lazily: TOCs and the pieces fetched so far
}

// Total is the sum of the parts.
func (u DiskUsage) Total() int64 { return u.Blobs + u.Indexes + u.Seek + u.Unpacked + u.Trees + u.Lazy }

func (u *DiskUsage) add(v DiskUsage) {
	u.Blobs += v.Blobs
	u.Indexes += v.Indexes
	u.Seek += v.Seek
	u.Unpacked += v.Unpacked
	u.Trees += v.Trees
	u.Lazy += v.Lazy
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
	SeekSize     int64           `json:"seek"`     // ocifs/seek file
	Entries      int             `json:"entries"`
	// Content says how the store's mode serves the layer (empty when it
	// cannot yet: a piece is missing, or in unpacked mode the copy, which
	// the next use rebuilds from the blob); Note says why a compressed
	// layer keeps its copy in compact mode, or that the copy is missing.
	Content ContentKind `json:"content,omitempty"`
	Note    string      `json:"note,omitempty"`
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
	info.Disk.Blobs = fileSize(s.blobPath(d.Digest)) + fileSize(s.blobPath(m.Config.Digest))
	if info.Stored != (v1.Hash{}) {
		info.Disk.Blobs += fileSize(s.blobPath(info.Digest))
	}
	for i, l := range m.Layers {
		li := s.describeLayer(l, cf.RootFS.DiffIDs[i])
		// Whether the layer can be served at all: a copy that only the
		// mode lacks is rebuilt on next use, not a problem.
		if err := s.layerCompleteIn(ModeCompact, l.Digest, li.DiffID); err != nil && info.Problem == "" {
			info.Problem = "layer " + l.Digest.String() + ": " + err.Error()
		}
		info.Disk.add(DiskUsage{Blobs: li.Size, Indexes: li.IndexSize, Seek: li.SeekSize, Unpacked: li.UnpackedSize})
		info.Layers = append(info.Layers, li)
		info.Disk.Trees += fileSize(s.treePathOf(cf.RootFS.DiffIDs[:i+1]))
	}
	return info
}

func (s *Store) describeLayer(l v1.Descriptor, diffID v1.Hash) LayerInfo {
	li := LayerInfo{Digest: l.Digest, DiffID: diffID, MediaType: l.MediaType}
	li.Size = fileSize(s.blobPath(l.Digest))
	li.IndexSize = fileSize(s.indexPath(li.DiffID))
	h, err := statIndex(s.indexPath(li.DiffID), li.DiffID)
	if err == nil {
		li.Entries = h.Entries
	}
	if l.Digest == diffID {
		if err == nil && li.Size == h.TarSize {
			li.Content = ContentBlob
		}
		return li
	}
	li.UnpackedSize = fileSize(s.unpackedPath(li.DiffID))
	li.SeekSize = fileSize(s.seekPath(l.Digest))
	x, xerr := s.loadSeek(l.Digest, diffID)
	if xerr == nil && !x.servable() {
		li.Note = fmt.Sprintf("a zstd frame of %s: kept unpacked", humanSize(x.zs.maxSpan))
	}
	switch {
	case err != nil:
	case li.UnpackedSize == h.TarSize && exists(s.unpackedPath(diffID)):
		li.Content = ContentUnpacked
	case s.mode == ModeCompact && xerr == nil && x.servable() && x.tarSize == h.TarSize:
		li.Content = x.contentKind()
	case s.mode == ModeUnpacked:
		li.Note = "no unpacked copy: made from the blob on next use"
	}
	return li
}

// Usage returns what the store's files take on disk, each counted once
// (temp files and locks aside).
func (s *Store) Usage() DiskUsage {
	return DiskUsage{
		Blobs:    dirSize(s.path(blobsDir + "/sha256")),
		Indexes:  dirSize(s.path(indexesDir + "/sha256")),
		Seek:     dirSize(s.path(seekDir + "/sha256")),
		Unpacked: dirSize(s.path(unpackedDir + "/sha256")),
		Trees:    dirSize(s.path(treesDir + "/sha256")),
		Lazy:     allocated(s.path(lazyDir + "/sha256")),
	}
}

func dirSize(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// humanSize renders a byte count for a note.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
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
