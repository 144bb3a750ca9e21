package cache

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// MaxChunkSize is the largest ConvertOptions.ChunkSize: a lazy mount
// pulls a layer with bigger chunks whole.
const MaxChunkSize = 64 << 20

// ConvertOptions configure Convert.
type ConvertOptions struct {
	// Format is what layers become (zero: FormatEStargz).
	Format ConvertFormat
	// ChunkSize is the most file bytes in one chunk (0: the estargz
	// package's default, 4 MiB), at most MaxChunkSize.
	ChunkSize int
	// MinChunkSize makes a member (gzip stream, zstd frame) hold at least
	// this many bytes of file data, small files put together, so that a
	// layer of many small files costs fewer members and a smaller TOC
	// (0: one member per chunk; at most MaxChunkSize). A lazy mount reads
	// such members' chunks in order without decoding a member twice.
	MinChunkSize int
	// Level is the gzip level (0: default), for eStargz only.
	Level int
}

// ConvertFormat is a seekable layer format Convert writes.
type ConvertFormat string

// Formats Convert writes.
const (
	// FormatEStargz: gzip members, layers annotated with their TOC digest.
	FormatEStargz ConvertFormat = "estargz"
	// FormatZstdChunked: zstd frames, the TOC in a skippable frame, layers
	// of the zstd media type annotated as the stargz snapshotter's
	// converter does (TOC JSON digest, compressed TOC checksum and
	// position).
	FormatZstdChunked ConvertFormat = "zstd:chunked"
)

// Convert rewrites img's layers as eStargz or zstd:chunked (each from its
// uncompressed stream, read through the store) and pushes the result to
// dst, a registry reference: OCI media types, each layer annotated with
// its TOC digest and uncompressed size, the config's diffIDs replaced
// (the tar stream gains prefetch landmarks, and an eStargz one ends with
// its TOC), everything else kept. It returns the pushed manifest's
// digest. The converted image merges to the same tree as img (the TOC
// entry and prefetch landmarks are hidden: see hideEStargzArtifacts and
// hideZstdChunkedArtifacts).
func (s *Store) Convert(ctx context.Context, img *Image, dst string, opts ConvertOptions) (v1.Hash, error) {
	spec, err := parseRef(dst, s.insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	if spec.reg == nil {
		return v1.Hash{}, errorf(ErrBadReference, "%s: convert pushes to a registry", dst)
	}
	if opts.Format == "" {
		opts.Format = FormatEStargz
	}
	if int64(opts.ChunkSize) > MaxChunkSize {
		return v1.Hash{}, fmt.Errorf("chunk size %d is over %d, the largest chunk a lazy mount reads", opts.ChunkSize, MaxChunkSize)
	}
	if opts.MinChunkSize < 0 || int64(opts.MinChunkSize) > MaxChunkSize {
		return v1.Hash{}, fmt.Errorf("minimum chunk size %d: give 0 to %d", opts.MinChunkSize, MaxChunkSize)
	}
	if opts.Format != FormatEStargz && opts.Format != FormatZstdChunked {
		return v1.Hash{}, fmt.Errorf("converting to %q: formats are %s and %s", opts.Format, FormatEStargz, FormatZstdChunked)
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	var diffIDs []v1.Hash
	for i := range img.Layers {
		l, err := s.estargzLayer(ctx, img, i, opts)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("converting layer %d (%s): %w", i, img.Layers[i].Digest, err)
		}
		defer l.remove()
		ann := map[string]string{
			AnnotationTOCDigest:                     l.toc.String(),
			estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(l.usize, 10),
		}
		maps.Copy(ann, l.annotations)
		out, err = mutate.Append(out, mutate.Addendum{Layer: l, MediaType: l.mt, Annotations: ann})
		if err != nil {
			return v1.Hash{}, err
		}
		diffIDs = append(diffIDs, l.diffID)
	}
	cf := img.Config.DeepCopy()
	cf.RootFS.DiffIDs = diffIDs
	if out, err = mutate.ConfigFile(out, cf); err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(spec.reg, out, remote.WithContext(ctx), remote.WithAuthFromKeychain(s.keychain), remote.WithUserAgent("ocifs")); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", dst, classifyRemote(err))
	}
	return out.Digest()
}

// stargzLayer is a converted layer blob in a temp file.
type stargzLayer struct {
	tmp            *tempFile // held (and flocked) until remove, so that no cleanup takes it
	path           string
	digest, diffID v1.Hash
	toc            v1.Hash
	size, usize    int64
	mt             types.MediaType
	annotations    map[string]string // the format's own
}

var _ v1.Layer = (*stargzLayer)(nil)

func (l *stargzLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *stargzLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *stargzLayer) Size() (int64, error)                { return l.size, nil }
func (l *stargzLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *stargzLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *stargzLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	var zr io.Reader
	if l.mt == types.OCILayerZStd {
		zr, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	} else {
		zr, err = gzip.NewReader(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}
func (l *stargzLayer) remove() { l.tmp.abort() }

// estargzLayer builds layer i of img as eStargz or zstd:chunked into a
// temp file.
func (s *Store) estargzLayer(ctx context.Context, img *Image, i int, opts ConvertOptions) (*stargzLayer, error) {
	sr := io.NewSectionReader(layerAt{img, i}, 0, img.Layers[i].UncompressedSize)
	bopts := []estargz.Option{estargz.WithContext(ctx)}
	if opts.MinChunkSize > 0 {
		bopts = append(bopts, estargz.WithMinChunkSize(opts.MinChunkSize))
	}
	if opts.ChunkSize > 0 {
		bopts = append(bopts, estargz.WithChunkSize(opts.ChunkSize))
	}
	if opts.Level != 0 {
		bopts = append(bopts, estargz.WithCompressionLevel(opts.Level))
	}
	mt, ann := types.OCILayer, map[string]string{}
	if opts.Format == FormatZstdChunked {
		mt = types.OCILayerZStd
		bopts = append(bopts, estargz.WithCompression(zstdChunkedCompression(ann)))
	}
	blob, err := estargz.Build(sr, bopts...)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	t, err := s.newTemp("estargz")
	if err != nil {
		return nil, err
	}
	hw := newHashWriter(t.f)
	if _, err := io.Copy(hw, blob); err != nil {
		t.abort()
		return nil, err
	}
	usize, err := blob.UncompressedSize()
	if err != nil {
		t.abort()
		return nil, err
	}
	diffID, err1 := v1.NewHash(blob.DiffID().String())
	toc, err2 := v1.NewHash(blob.TOCDigest().String())
	if err1 != nil || err2 != nil {
		t.abort()
		return nil, fmt.Errorf("reading built digests: %v %v", err1, err2)
	}
	return &stargzLayer{tmp: t, path: t.f.Name(), digest: hw.sum(), diffID: diffID, toc: toc, size: hw.n, usize: usize, mt: mt, annotations: ann}, nil
}

// layerAt reads one layer's uncompressed stream of an Image.
type layerAt struct {
	img *Image
	i   int
}

func (l layerAt) ReadAt(p []byte, off int64) (int, error) { return l.img.ReadLayerAt(l.i, p, off) }
