package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	"github.com/ocifs/ocifs/overlay"
)

// zstd:chunked is a zstd stream of frames that decode on their own (each
// chunk of file data starts one), followed by skippable frames, which
// decoders pass over: the TOC (zstd-compressed JSON, the eStargz TOC's
// shape) and a footer saying where the TOC is. Two writers make it:
//
//   - the estargz package (stargz-snapshotter, ocifs convert): annotations
//     io.containers.zstd-chunked.manifest-{checksum,position} and, as for
//     eStargz, the TOC JSON's digest; a 40-byte footer ending in
//     "GnUlInUx"; prefetch landmarks in the tar stream (the TOC is not in
//     it); no end-of-archive blocks. containers/storage wrote the same
//     footer and annotations before its 64-byte footer.
//   - containers/storage (podman, buildah): annotations
//     io.github.containers.zstd-chunked.manifest-{checksum,position}; a
//     tar-split frame after the TOC; a 64-byte footer ending in
//     "GNUlInUx" whose first 32 bytes are laid out as the 40-byte one's.
//     The stream is the original tar, byte for byte. Each chunk is a frame
//     of its own (no inner offsets); a file of one chunk has no chunk
//     digest, its file digest says the same.
//
// The checksum annotations pin the compressed TOC (the skippable frame's
// payload); the position annotation ("offset:length:uncompressed
// length:1") lets one Range request fetch it without reading the footer
// first. Both variants read the same way.
const (
	annZstdChunkedChecksum    = zstdchunked.ManifestChecksumAnnotation
	annZstdChunkedPosition    = zstdchunked.ManifestPositionAnnotation
	annContainersZstdChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	annContainersZstdPosition = "io.github.containers.zstd-chunked.manifest-position"
)

var (
	zstdChunkedMagic40 = []byte("GnUlInUx") // 40-byte footer
	zstdChunkedMagic64 = []byte("GNUlInUx") // 64-byte footer
)

const (
	zstdSkippableHeader  = 8 // magic, then the payload's size (uint32 LE)
	zstdChunkedFooterMax = 64 + zstdSkippableHeader
	zstdManifestTypeCRFS = 1
	// zstdMemberMaxWindow is the largest zstd window a chunk may need
	// (the zstd tool's default limit): a frame asking for more is refused
	// rather than allocated.
	zstdMemberMaxWindow = 128 << 20
)

// zstdTOCLocation is where a zstd:chunked TOC is: its skippable frame's
// payload, the compressed TOC, is the blob's bytes [off, off+clen).
type zstdTOCLocation struct {
	off, clen, ulen int64
}

// zstdChunkedFormat reads zstd:chunked layers.
type zstdChunkedFormat struct {
	pinJSON  bool             // the pin is the TOC JSON's digest, not the compressed TOC's
	plainTar bool             // containers/storage's: the stream is the original tar
	pos      *zstdTOCLocation // from the position annotation, if it has one
}

var _ tocFormat = (*zstdChunkedFormat)(nil)

// zstdChunkedSpec recognizes a zstd:chunked layer by its checksum
// annotation (either writer's), or by the eStargz TOC annotation on a
// zstd layer.
func zstdChunkedSpec(d v1.Descriptor) (lazySpec, bool) {
	for _, ann := range [][2]string{{annContainersZstdChecksum, annContainersZstdPosition}, {annZstdChunkedChecksum, annZstdChunkedPosition}} {
		if _, ok := d.Annotations[ann[0]]; ok {
			f := &zstdChunkedFormat{plainTar: ann[0] == annContainersZstdChecksum, pos: parseZstdPosition(d.Annotations[ann[1]])}
			return lazySpec{format: f, pinKey: ann[0]}, true
		}
	}
	if _, ok := d.Annotations[AnnotationTOCDigest]; ok && isZstdMediaType(d.MediaType) {
		pos := parseZstdPosition(d.Annotations[annZstdChunkedPosition])
		return lazySpec{format: &zstdChunkedFormat{pinJSON: true, pos: pos}, pinKey: AnnotationTOCDigest}, true
	}
	return lazySpec{}, false
}

func isZstdMediaType(mt types.MediaType) bool {
	return mt == types.OCILayerZStd || mt == "application/vnd.docker.image.rootfs.diff.tar.zstd"
}

// parseZstdPosition reads "offset:length:uncompressed length:type"; nil
// if it is missing or not of the one known type.
func parseZstdPosition(s string) *zstdTOCLocation {
	f := strings.Split(s, ":")
	if len(f) != 4 || f[3] != strconv.Itoa(zstdManifestTypeCRFS) {
		return nil
	}
	var n [3]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || v < 0 {
			return nil
		}
		n[i] = v
	}
	return &zstdTOCLocation{off: n[0], clen: n[1], ulen: n[2]}
}

func (*zstdChunkedFormat) String() string { return "zstd:chunked" }

// parseZstdChunkedFooter reads the footer in the last bytes of a blob
// (either size, with the skippable frame header before it).
func parseZstdChunkedFooter(tail []byte) (zstdTOCLocation, error) {
	n := len(tail)
	if n < 40+zstdSkippableHeader {
		return zstdTOCLocation{}, fmt.Errorf("blob too short for a zstd:chunked footer")
	}
	var size int
	switch m := tail[n-8:]; {
	case bytes.Equal(m, zstdChunkedMagic40):
		size = 40
	case bytes.Equal(m, zstdChunkedMagic64) && n >= 64+zstdSkippableHeader:
		size = 64
	default:
		return zstdTOCLocation{}, fmt.Errorf("no zstd:chunked footer magic (last bytes %x)", m)
	}
	foot, hdr := tail[n-size:], tail[n-size-zstdSkippableHeader:n-size]
	if !isSkippableHeader(hdr, int64(size)) {
		return zstdTOCLocation{}, fmt.Errorf("the zstd:chunked footer is not in a skippable frame of its size")
	}
	le := binary.LittleEndian
	if typ := le.Uint64(foot[24:]); typ != zstdManifestTypeCRFS {
		return zstdTOCLocation{}, fmt.Errorf("zstd:chunked TOC of unknown type %d", typ)
	}
	off, clen, ulen := le.Uint64(foot), le.Uint64(foot[8:]), le.Uint64(foot[16:])
	if off > 1<<62 || clen > 1<<62 || ulen > 1<<62 {
		return zstdTOCLocation{}, fmt.Errorf("zstd:chunked footer out of range")
	}
	return zstdTOCLocation{off: int64(off), clen: int64(clen), ulen: int64(ulen)}, nil
}

// isSkippableHeader reports whether h starts a skippable frame of n bytes.
func isSkippableHeader(h []byte, n int64) bool {
	return len(h) >= zstdSkippableHeader && binary.LittleEndian.Uint32(h)&^0xF == zstdSkippableMagic &&
		int64(binary.LittleEndian.Uint32(h[4:])) == n
}

// fetchTOC reads the TOC's skippable frame (from the position annotation,
// else from the footer, which costs a request more), and the rest of the
// blob with it when only the footer follows.
func (f *zstdChunkedFormat) fetchTOC(ctx context.Context, src *rangeSource, size int64, lim Limits) (*fetchedTOC, error) {
	loc := f.pos
	if loc == nil {
		foot, err := src.readRange(ctx, max(0, size-zstdChunkedFooterMax), size)
		if err != nil {
			return nil, err
		}
		l, err := parseZstdChunkedFooter(foot)
		if err != nil {
			return nil, errorf(ErrInvalidImage, "%v", err)
		}
		loc = &l
	}
	if err := checkZstdTOCLocation(*loc, size, lim); err != nil {
		return nil, err
	}
	from, to := loc.off-zstdSkippableHeader, loc.off+loc.clen
	if size-to <= zstdChunkedFooterMax {
		to = size
	}
	b, err := src.readRange(ctx, from, to)
	if err != nil {
		return nil, err
	}
	if !isSkippableHeader(b, loc.clen) {
		return nil, errorf(ErrInvalidImage, "no skippable frame of %d bytes at byte %d for the zstd:chunked TOC", loc.clen, from)
	}
	t := &fetchedTOC{pinned: b[zstdSkippableHeader : zstdSkippableHeader+loc.clen], dataEnd: from}
	if to == size {
		t.tail = b
	}
	if f.pinJSON {
		if t.pinned, err = decompressTOC(t.pinned, lim.tocJSONMax()); err != nil {
			return nil, errorf(ErrInvalidImage, "%v", err)
		}
	}
	return t, nil
}

// checkZstdTOCLocation checks that a TOC location is inside the blob,
// after at least one data frame, and within the index memory limit.
func checkZstdTOCLocation(loc zstdTOCLocation, size int64, lim Limits) error {
	if loc.off < zstdSkippableHeader+4 || loc.clen <= 0 || loc.off > size || loc.clen > size-loc.off {
		return errorf(ErrInvalidImage, "zstd:chunked TOC at bytes %d-%d is outside the blob of %d bytes", loc.off, loc.off+loc.clen, size)
	}
	if m := lim.MaxIndexMemory; m >= 0 && (loc.clen > m || loc.ulen > m) {
		return limitErrorf(LimitIndexMemory, m, "TOC of %d bytes (%d compressed) is over the limit of %d (%s)", loc.ulen, loc.clen, m, LimitIndexMemory)
	}
	return nil
}

func (f *zstdChunkedFormat) parseTOC(pinned []byte, lim Limits) (*estargz.JTOC, error) {
	raw := pinned
	if !f.pinJSON {
		var err error
		if raw, err = decompressTOC(pinned, lim.tocJSONMax()); err != nil {
			return nil, err
		}
	}
	return parseTOCJSON(raw)
}

// decompressTOC decodes a compressed TOC of at most max bytes.
func decompressTOC(b []byte, max int64) ([]byte, error) {
	r, release, err := zstdMember(b)
	if err != nil {
		return nil, fmt.Errorf("reading zstd:chunked TOC: %w", err)
	}
	defer release()
	raw, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing zstd:chunked TOC: %w", err)
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("zstd:chunked TOC JSON is over the limit of %d bytes", max)
	}
	return raw, nil
}

func (*zstdChunkedFormat) member(b []byte) (io.Reader, func(), error) { return zstdMember(b) }

// artifact: the estargz package's landmarks (see
// hideZstdChunkedArtifacts); nothing in containers/storage's stream, the
// original tar, which the layer pass leaves as it is. (A layer of the
// io.containers annotations that containers/storage wrote before its
// 64-byte footer is taken for the estargz package's: a root landmark file
// of its own would be hidden here and shown when pulled whole.)
func (f *zstdChunkedFormat) artifact(name string) bool {
	return !f.plainTar && estargzArtifact(name)
}

// zstdMemberDecoders are streaming decoders without goroutines, reset for
// each member: a chunk is read up to its end and no further, so a frame
// that inflates without bound costs no more than the chunk.
var zstdMemberDecoders sync.Pool

// zstdMember returns a decoder over b's frames and its release.
func zstdMember(b []byte) (io.Reader, func(), error) {
	d, _ := zstdMemberDecoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMemberMaxWindow))
		if err != nil {
			return nil, nil, err
		}
	}
	// A *bytes.Reader, not a *bytes.Buffer: the decoder would decode a
	// small enough Buffer all at once (DecodeAll), however far it inflates.
	if err := d.Reset(bytes.NewReader(b)); err != nil {
		return nil, nil, err
	}
	return d, func() {
		d.Reset(nil)
		zstdMemberDecoders.Put(d)
	}, nil
}

// hideZstdChunkedArtifacts drops the prefetch landmarks from the index of
// a layer the estargz package wrote as zstd:chunked, recognized by its tar
// stream: a landmark at the root, and no end-of-archive blocks after the
// last entry (the estargz writer never closes its tar writer; its TOC is
// in a skippable frame, outside the stream). The rule depends on the tar
// stream alone, as the index does, and gives the same entries as a lazy
// layer's TOC-made index (see estargzArtifact). containers/storage's
// zstd:chunked stream is the original tar: nothing to hide.
func hideZstdChunkedArtifacts(res *tarindex.Result, tarSize int64) *tarindex.Result {
	es := res.Layer.Entries
	if len(es) == 0 || tarSize-entryDataEnd(es[len(es)-1]) >= 2*512 || !slices.ContainsFunc(es, isLandmark) {
		return res
	}
	return dropEStargzArtifacts(res)
}

// isLandmark: a prefetch landmark as the estargz package writes it.
func isLandmark(e overlay.Entry) bool {
	switch rootName(e.Name) {
	case estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
		return e.Type == overlay.TypeRegular && e.Size == 1
	}
	return false
}

// entryDataEnd is where the tar stream's blocks of an entry's data end.
func entryDataEnd(e overlay.Entry) int64 {
	end := e.Offset
	switch {
	case len(e.Sparse) > 0:
		for _, x := range e.Sparse {
			end = max(end, x.TarOff+x.Len)
		}
	case e.Type == overlay.TypeRegular:
		end += e.Size
	}
	return (end + 511) &^ 511
}

// zstdChunkedCompression makes estargz.Build write zstd:chunked; the
// TOC's checksum and position annotations land in ann.
func zstdChunkedCompression(ann map[string]string) estargz.Compression {
	return struct {
		*zstdchunked.Compressor
		*zstdchunked.Decompressor
	}{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault, Metadata: ann}, new(zstdchunked.Decompressor)}
}
