package cache

import (
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/ocifs/ocifs/overlay"
)

// lazyIndex is an eStargz or zstd:chunked layer's index built from its TOC, with the map
// from file bytes to the blob's chunks.
//
// Offsets: the TOC does not say where a file's bytes sit in the layer's
// uncompressed tar stream (tar headers are not described), so a lazy
// layer serves a virtual stream instead: the data of its regular files,
// in TOC order, back to back from offset 0. Entry.Offset points into that
// stream and each chunk of the TOC covers one range of it. The virtual
// stream is not the tar stream: a lazy layer's index is never stored
// under the layer's diffID, and a tree made from it is never saved.
type lazyIndex struct {
	layer     overlay.Layer
	whiteouts int
	size      int64 // of the virtual stream
	chunks    []lazyChunk
	pieces    []lazyPiece
	tocOffset int64
	blobSize  int64
}

// lazyChunk is a range of the virtual stream stored in one compressed
// member of the blob: its decompressed bytes from inner on.
type lazyChunk struct {
	vOff, size int64
	piece      int
	inner      int64
	digest     [32]byte
}

// lazyPiece is a range of the blob fetched, checked and recorded as a
// unit: a compressed member (checked against the digests of the chunks
// it holds), or a range without file data (the members before the first
// chunk, the TOC and the footer), which only the digest of the whole blob
// checks and from which nothing is served.
type lazyPiece struct {
	start, end int64
	chunks     []int
}

// Lazy reads hold one chunk decoded in memory and one member fetched in
// memory at a time, so a TOC may not declare either of any size: a layer
// whose chunks or members are bigger is pulled whole instead (its TOC is
// signed by the manifest digest, but that says nothing of its sizes, and
// a chunk of zeros declared as 60 GiB would otherwise be an allocation of
// 60 GiB). The estargz writers' default chunk is 4 MiB. Variables for
// tests.
var (
	maxLazyChunk int64 = MaxChunkSize // decompressed bytes of one chunk
	maxLazyPiece int64 = 80 << 20     // compressed bytes of one member (or of the run before the first)
)

// buildLazyIndex turns a verified TOC into a layer index, within lim.
// Entries the format says are its own (artifact) are hidden.
func buildLazyIndex(toc *estargz.JTOC, tocOffset, blobSize int64, artifact func(string) bool, lim Limits) (*lazyIndex, error) {
	b := &lazyBuilder{x: &lazyIndex{tocOffset: tocOffset, blobSize: blobSize}, lim: lim, artifact: artifact, pieceAt: map[int64]int{}}
	if err := b.pieces(toc); err != nil {
		return nil, err
	}
	for i, te := range toc.Entries {
		if err := b.add(te); err != nil {
			return nil, fmt.Errorf("TOC entry %d (%.120q): %w", i, te.Name, err)
		}
	}
	if err := b.finishFile(); err != nil {
		return nil, err
	}
	return b.x, nil
}

type lazyBuilder struct {
	x        *lazyIndex
	lim      Limits
	artifact func(name string) bool
	pieceAt  map[int64]int // piece index by start
	// the regular file whose chunks are being read
	file      *overlay.Entry
	fileEnd   int64 // virtual offset where its data ends
	fileNext  int64 // its next chunk's offset within the file
	hidden    bool  // the file is a format artifact: chunks not served
	lastBlobO int64
}

// pieces cuts the blob at every member a chunk starts in, at the TOC and
// at the footer.
func (b *lazyBuilder) pieces(toc *estargz.JTOC) error {
	cuts := []int64{0, b.x.tocOffset, b.x.blobSize}
	for _, te := range toc.Entries {
		if isData(te) {
			if te.Offset < 0 || te.Offset >= b.x.tocOffset {
				return fmt.Errorf("TOC entry %.120q: chunk offset %d outside the blob's data (TOC at %d)", te.Name, te.Offset, b.x.tocOffset)
			}
			cuts = append(cuts, te.Offset)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		// The last piece, TOC and footer, is bounded by MaxIndexMemory.
		if n := cuts[i+1] - cuts[i]; cuts[i] < b.x.tocOffset && n > maxLazyPiece {
			return fmt.Errorf("blob bytes %d-%d hold no chunk boundary: %d bytes is over the %d a lazy read may fetch at once", cuts[i], cuts[i+1], n, maxLazyPiece)
		}
		b.pieceAt[cuts[i]] = len(b.x.pieces)
		b.x.pieces = append(b.x.pieces, lazyPiece{start: cuts[i], end: cuts[i+1]})
	}
	return nil
}

func isData(te *estargz.TOCEntry) bool {
	return (te.Type == "reg" && te.Size > 0) || te.Type == "chunk"
}

func (b *lazyBuilder) add(te *estargz.TOCEntry) error {
	if te.Type == "chunk" {
		return b.chunk(te)
	}
	if err := b.finishFile(); err != nil {
		return err
	}
	e, err := tocEntry(te, b.lim)
	if err != nil {
		return err
	}
	if n := len(b.x.layer.Entries) + 1; b.lim.MaxEntries >= 0 && n > b.lim.MaxEntries {
		return limitErrorf(LimitEntries, int64(b.lim.MaxEntries), "more than %d entries (%s)", b.lim.MaxEntries, LimitEntries)
	}
	hidden := b.artifact(te.Name)
	if e.Type == overlay.TypeRegular {
		e.Offset = b.x.size
		if te.Size > 0 {
			if te.Size > math.MaxInt64/2-b.x.size {
				return fmt.Errorf("file data of more than %d bytes", int64(math.MaxInt64/2))
			}
			b.file, b.fileEnd, b.fileNext, b.hidden = &e, b.x.size+te.Size, 0, hidden
			if !hidden {
				b.x.size += te.Size
			}
			if err := b.chunk(te); err != nil {
				return err
			}
		}
	}
	if hidden {
		return nil
	}
	if strings.HasPrefix(path.Base(strings.TrimSuffix(e.Name, "/")), ".wh.") {
		b.x.whiteouts++
	}
	b.x.layer.Entries = append(b.x.layer.Entries, e)
	if max := b.lim.MaxLayerSize; max >= 0 && b.x.size > max {
		return limitErrorf(LimitLayerSize, max, "file data of %d bytes exceeds the limit of %d (%s)", b.x.size, max, LimitLayerSize)
	}
	return nil
}

// chunk records one chunk of the current file (its first one is the "reg"
// entry itself).
func (b *lazyBuilder) chunk(te *estargz.TOCEntry) error {
	if b.file == nil {
		return fmt.Errorf("chunk without a regular file before it")
	}
	size := b.file.Size - te.ChunkOffset
	if te.ChunkSize > 0 && te.ChunkSize < size {
		size = te.ChunkSize
	}
	if te.ChunkOffset != b.fileNext || size <= 0 {
		return fmt.Errorf("chunk at %d of %d bytes does not continue the file at %d", te.ChunkOffset, te.ChunkSize, b.fileNext)
	}
	if size > maxLazyChunk {
		return fmt.Errorf("chunk at %d of %d bytes is over the %d a lazy read may decode at once", te.ChunkOffset, size, maxLazyChunk)
	}
	if te.Offset < b.lastBlobO || te.InnerOffset < 0 {
		return fmt.Errorf("chunk offset %d (inner %d) goes backwards", te.Offset, te.InnerOffset)
	}
	b.lastBlobO = te.Offset
	d, err := parseDigest(chunkDigestOf(te, size == b.file.Size))
	if err != nil {
		return fmt.Errorf("chunk digest: %w", err)
	}
	b.fileNext += size
	if b.hidden {
		return nil
	}
	raw, _ := hexDigest(d.Hex)
	p := b.pieceAt[te.Offset]
	b.x.pieces[p].chunks = append(b.x.pieces[p].chunks, len(b.x.chunks))
	b.x.chunks = append(b.x.chunks, lazyChunk{vOff: b.fileEnd - b.file.Size + te.ChunkOffset, size: size, piece: p, inner: te.InnerOffset, digest: raw})
	return nil
}

// chunkDigestOf is a chunk's digest: its own, or, for a file in one chunk
// without one (containers/storage's zstd:chunked lists only the file's
// digest then), the file's.
func chunkDigestOf(te *estargz.TOCEntry, wholeFile bool) string {
	if te.ChunkDigest == "" && te.Type == "reg" && wholeFile {
		return te.Digest
	}
	return te.ChunkDigest
}

// finishFile checks that the current file's chunks covered it.
func (b *lazyBuilder) finishFile() error {
	if b.file != nil && b.fileNext != b.file.Size {
		return fmt.Errorf("file %.120q: chunks cover %d of %d bytes", b.file.Name, b.fileNext, b.file.Size)
	}
	b.file = nil
	return nil
}

// tocEntry converts a TOC entry's metadata, checking it as the tar scan
// checks a header.
func tocEntry(te *estargz.TOCEntry, lim Limits) (overlay.Entry, error) {
	e := overlay.Entry{Name: te.Name, Linkname: te.LinkName}
	switch te.Type {
	case "reg":
		e.Type, e.Size = overlay.TypeRegular, te.Size
	case "dir":
		e.Type = overlay.TypeDir
	case "symlink":
		e.Type = overlay.TypeSymlink
	case "hardlink":
		e.Type = overlay.TypeHardlink
	case "char":
		e.Type = overlay.TypeChar
	case "block":
		e.Type = overlay.TypeBlock
	case "fifo":
		e.Type = overlay.TypeFifo
	default:
		return e, errorf(ErrInvalidImage, "unknown entry type %q", te.Type)
	}
	if te.Size < 0 || te.UID < 0 || te.GID < 0 || int64(te.UID) > 1<<32-1 || int64(te.GID) > 1<<32-1 ||
		te.DevMajor < 0 || te.DevMinor < 0 || int64(te.DevMajor) > 1<<32-1 || int64(te.DevMinor) > 1<<32-1 || te.Mode < 0 {
		return e, errorf(ErrInvalidImage, "size, owner, mode or device number out of range")
	}
	e.Mode, e.UID, e.GID = uint32(te.Mode&0o7777), uint32(te.UID), uint32(te.GID)
	e.Devmajor, e.Devminor = uint32(te.DevMajor), uint32(te.DevMinor)
	if te.ModTime3339 != "" {
		t, err := time.Parse(time.RFC3339, te.ModTime3339)
		if err != nil {
			return e, errorf(ErrInvalidImage, "modification time %q: %v", te.ModTime3339, err)
		}
		e.MTime, e.MTimeNsec = t.Unix(), uint32(t.Nanosecond())
	}
	if err := checkNames(&e, lim); err != nil {
		return e, err
	}
	return e, tocXattrs(&e, te.Xattrs, lim)
}

func checkNames(e *overlay.Entry, lim Limits) error {
	for _, s := range []string{e.Name, e.Linkname} {
		if lim.MaxName >= 0 && len(s) > lim.MaxName {
			return limitErrorf(LimitName, int64(lim.MaxName), "name or link target of %d bytes is over the limit of %d (%s)", len(s), lim.MaxName, LimitName)
		}
	}
	for _, c := range strings.Split(e.Name, "/") {
		if len(c) > 255 {
			return errorf(ErrInvalidImage, "a path component is longer than 255 bytes")
		}
	}
	return nil
}

func tocXattrs(e *overlay.Entry, xs map[string][]byte, lim Limits) error {
	for k, v := range xs {
		if len(k) > 255 || k == "" {
			return errorf(ErrInvalidImage, "xattr name of %d bytes", len(k))
		}
		if lim.MaxXattr >= 0 && len(v) > lim.MaxXattr {
			return limitErrorf(LimitXattr, int64(lim.MaxXattr), "xattr %.120q of %d bytes is over the limit of %d (%s)", k, len(v), lim.MaxXattr, LimitXattr)
		}
		e.Xattrs = append(e.Xattrs, overlay.Xattr{Name: k, Value: string(v)})
	}
	sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Name < e.Xattrs[j].Name })
	return nil
}

// chunkOf returns the chunk holding virtual offset off.
func (x *lazyIndex) chunkOf(off int64) int {
	i := sort.Search(len(x.chunks), func(i int) bool { return x.chunks[i].vOff+x.chunks[i].size > off })
	return min(i, len(x.chunks)-1)
}

// pieceOf returns the piece holding blob offset off.
func (x *lazyIndex) pieceOf(off int64) int {
	i := sort.Search(len(x.pieces), func(i int) bool { return x.pieces[i].end > off })
	return min(i, len(x.pieces)-1)
}
