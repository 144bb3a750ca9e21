package cache

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	"github.com/ocifs/ocifs/overlay"
)

// AnnotationTOCDigest is the layer annotation that pins an eStargz
// layer's table of contents: the sha256 of its JSON. A manifest pinned by
// its digest thereby pins every chunk digest the TOC lists.
const AnnotationTOCDigest = estargz.TOCJSONDigestAnnotation

// estargzFooterMax is the bytes read from a blob's end to find an eStargz
// footer: the current one (51 bytes) or the legacy stargz one (47, a
// suffix of those 51).
const estargzFooterMax = estargz.FooterSize

// parseEStargzFooter finds the TOC offset in the last bytes of a blob (at
// most estargzFooterMax of them) and returns it with the footer's size.
func parseEStargzFooter(tail []byte) (tocOffset, footerSize int64, err error) {
	var errs []string
	for _, d := range []estargz.Decompressor{new(estargz.GzipDecompressor), new(estargz.LegacyGzipDecompressor)} {
		n := d.FooterSize()
		if int64(len(tail)) < n {
			continue
		}
		_, off, _, perr := d.ParseFooter(tail[int64(len(tail))-n:])
		if perr == nil {
			return off, n, nil
		}
		errs = append(errs, perr.Error())
	}
	return 0, 0, fmt.Errorf("no eStargz footer (%s)", strings.Join(errs, "; "))
}

// estargzArtifact reports whether a tar entry of an eStargz layer is part
// of the format rather than of the image: the TOC's own tar entry and the
// prefetch landmarks, all at the root. ocifs hides them, as the stargz
// snapshotter and containers/storage do, so that an image and its eStargz
// conversion merge to the same tree, pulled whole or mounted lazily.
func estargzArtifact(name string) bool {
	switch rootName(name) {
	case estargz.TOCTarName, estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
		return true
	}
	return false
}

// rootName is a tar entry's name cleaned, relative to the root.
func rootName(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// estargzFormat is eStargz: gzip members, the TOC a tar entry
// (stargz.index.json) in a gzip member of its own after the last one, and
// a 51-byte footer (47 for legacy stargz) giving the TOC member's offset.
// The annotation pins the TOC's JSON.
type estargzFormat struct{}

var _ tocFormat = estargzFormat{}

func (estargzFormat) String() string { return "eStargz" }

// fetchTOC reads the footer, then the TOC member, with one Range request
// each.
func (estargzFormat) fetchTOC(ctx context.Context, src *rangeSource, size int64, lim Limits) (*fetchedTOC, error) {
	foot, err := src.readRange(ctx, max(0, size-estargzFooterMax), size)
	if err != nil {
		return nil, err
	}
	tocOff, footSize, err := parseEStargzFooter(foot)
	if err != nil || tocOff < 0 || tocOff >= size-footSize {
		return nil, errorf(ErrInvalidImage, "annotated as eStargz but has no valid footer (%v)", err)
	}
	if n := size - footSize - tocOff; lim.MaxIndexMemory >= 0 && n > lim.MaxIndexMemory {
		return nil, limitErrorf(LimitIndexMemory, lim.MaxIndexMemory, "TOC of %d bytes is over the limit of %d (%s)", n, lim.MaxIndexMemory, LimitIndexMemory)
	}
	member, err := src.readRange(ctx, tocOff, size-footSize)
	if err != nil {
		return nil, err
	}
	raw, err := tocJSONOfMember(member, lim.tocJSONMax())
	if err != nil {
		return nil, errorf(ErrInvalidImage, "%v", err)
	}
	return &fetchedTOC{pinned: raw, dataEnd: tocOff, tail: append(member, foot[len(foot)-int(footSize):]...)}, nil
}

func (estargzFormat) parseTOC(pinned []byte, _ Limits) (*estargz.JTOC, error) {
	return parseTOCJSON(pinned)
}

func (estargzFormat) artifact(name string) bool { return estargzArtifact(name) }

// member decodes one gzip member, not the ones after it.
func (estargzFormat) member(b []byte) (io.Reader, func(), error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	zr.Multistream(false)
	return zr, func() {}, nil
}

// tocJSONOfMember reads the TOC gzip member of an eStargz blob (a tar
// holding stargz.index.json), reading at most max bytes of JSON.
func tocJSONOfMember(member []byte, max int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(member))
	if err != nil {
		return nil, fmt.Errorf("reading TOC: %w", err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("reading TOC tar header: %w", err)
	}
	if h.Name != estargz.TOCTarName {
		return nil, fmt.Errorf("TOC tar entry is named %q, want %q", h.Name, estargz.TOCTarName)
	}
	if h.Size > max {
		return nil, fmt.Errorf("TOC JSON of %d bytes is over the limit of %d", h.Size, max)
	}
	raw, err := io.ReadAll(io.LimitReader(tr, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading TOC JSON: %w", err)
	}
	return raw, nil
}

func parseTOCJSON(raw []byte) (*estargz.JTOC, error) {
	toc := new(estargz.JTOC)
	if err := json.Unmarshal(raw, toc); err != nil {
		return nil, fmt.Errorf("decoding TOC JSON: %w", err)
	}
	return toc, nil
}

// parseDigest reads a "sha256:HEX" digest string (v1.NewHash checks the
// hex and its length).
func parseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil || h.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("bad digest %q", s)
	}
	return h, nil
}

// hexDigest decodes a sha256 digest's hex into raw bytes.
func hexDigest(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("bad sha256 hex %q", h)
	}
	copy(out[:], b)
	return out, nil
}

// hideEStargzArtifacts drops the format's own entries from the index of
// an eStargz layer, recognized by its tar stream: the last entry is the
// TOC, stargz.index.json. The rule depends on the tar stream alone, as
// the index does (it is stored by diffID), and gives the same entries as
// a lazy layer's TOC-made index.
func hideEStargzArtifacts(res *tarindex.Result) *tarindex.Result {
	es := res.Layer.Entries
	if len(es) == 0 || es[len(es)-1].Type != overlay.TypeRegular ||
		rootName(es[len(es)-1].Name) != estargz.TOCTarName {
		return res
	}
	return dropEStargzArtifacts(res)
}

// dropEStargzArtifacts removes the entries estargzArtifact names.
func dropEStargzArtifacts(res *tarindex.Result) *tarindex.Result {
	kept := res.Layer.Entries[:0:0]
	for _, e := range res.Layer.Entries {
		if !estargzArtifact(e.Name) {
			kept = append(kept, e)
		}
	}
	res.Layer.Entries = kept
	return res
}
