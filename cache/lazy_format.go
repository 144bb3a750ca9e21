package cache

import (
	"context"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tocFormat is a seekable layer format a lazy layer reads: a blob of
// compressed members that decode on their own, a table of contents
// listing every file's chunks (the member holding it, its offset inside
// the member's output, its digest), and a footer saying where the TOC
// is. Two formats share this shape: eStargz (gzip members, the TOC in a
// tar entry of its own member; estargzFormat) and zstd:chunked (zstd
// frames, the TOC in a skippable frame; zstdChunkedFormat). Everything
// else of a lazy layer (the index from the TOC, pieces, the partial blob,
// fetch windows, the background fill) does not depend on the format.
type tocFormat interface {
	String() string
	// fetchTOC reads the TOC with Range requests: the bytes the manifest's
	// annotation pins (not checked yet), within lim.
	fetchTOC(ctx context.Context, src *rangeSource, size int64, lim Limits) (*fetchedTOC, error)
	// parseTOC decodes pinned bytes, already checked against the pin.
	parseTOC(pinned []byte, lim Limits) (*estargz.JTOC, error)
	// member returns a reader of a member's decompressed bytes (b may hold
	// more members after it) and what to call once done with it.
	member(b []byte) (r io.Reader, release func(), err error)
	// artifact reports whether a TOC entry is the format's rather than the
	// image's, hidden as the layer pass hides it in the tar stream (see
	// estargzArtifact), so that a lazy layer and the same layer pulled
	// whole show the same entries.
	artifact(name string) bool
}

// fetchedTOC is what fetchTOC read.
type fetchedTOC struct {
	pinned  []byte // the bytes whose sha256 the annotation gives
	dataEnd int64  // where the members end and the TOC's bytes begin
	tail    []byte // the blob's bytes [dataEnd, size), if all were fetched
}

// lazySpec says how a layer can be read lazily: its format and the
// annotation that pins its TOC.
type lazySpec struct {
	format tocFormat
	pinKey string
}

// lazySpecOf tells from a layer's descriptor whether the layer can be read
// lazily: zstd:chunked (see zstdChunkedSpec) before eStargz, since
// zstd:chunked layers made by the estargz package carry the eStargz TOC
// annotation too (pinning the TOC's JSON).
func lazySpecOf(d v1.Descriptor) (lazySpec, bool) {
	if sp, ok := zstdChunkedSpec(d); ok {
		return sp, true
	}
	if _, ok := d.Annotations[AnnotationTOCDigest]; ok {
		return lazySpec{format: estargzFormat{}, pinKey: AnnotationTOCDigest}, true
	}
	return lazySpec{}, false
}

// tocJSONMax is the most bytes of TOC JSON read: MaxIndexMemory (1 TiB
// when unlimited).
func (lim Limits) tocJSONMax() int64 {
	if lim.MaxIndexMemory < 0 {
		return 1 << 40
	}
	return lim.MaxIndexMemory
}
