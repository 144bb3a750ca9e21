package tarindex

import (
	"archive/tar"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/ocifs/ocifs/overlay"
)

// PAX record prefixes that carry extended attributes.
const (
	paxSchilyXattr     = "SCHILY.xattr."
	paxLibarchiveXattr = "LIBARCHIVE.xattr."
)

// Result is a layer's index and a summary of it.
type Result struct {
	Layer     overlay.Layer
	Whiteouts int // entries whose base name starts with .wh.
}

// Scan reads the uncompressed tar stream r up to its end-of-archive
// marker (not beyond) and returns the index of its entries, without
// limits.
func Scan(r io.Reader) (*Result, error) { return ScanLimited(r, Limits{}) }

// ScanLimited is Scan within lim: it stops at the first entry that
// exceeds a limit, with an error that names the entry and wraps a
// *LimitError.
func ScanLimited(r io.Reader, lim Limits) (*Result, error) {
	sc := &scanner{sr: &scanReader{r: r}, lim: lim}
	sc.tr = tar.NewReader(sc.sr)
	for {
		done, err := sc.next()
		if err != nil || done {
			return sc.res(err)
		}
	}
}

// scanner is the state of one Scan.
type scanner struct {
	sr     *scanReader
	tr     *tar.Reader
	lim    Limits
	out    Result
	memory int64  // IndexMemory of the entries so far
	at     int64  // where the next entry's header blocks start
	prev   string // the previous entry's name, for errors between entries
}

func (sc *scanner) res(err error) (*Result, error) {
	if err != nil {
		return nil, err
	}
	return &sc.out, nil
}

// next indexes one entry; done is true at the end of the archive.
func (sc *scanner) next() (done bool, err error) {
	sc.sr.startCapture(sc.at)
	hdr, err := sc.tr.Next()
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, sc.headerError(err)
	}
	e, end, err := scanEntry(sc.sr, hdr)
	if err == nil && sc.lim.MaxStream > 0 && end > sc.lim.MaxStream {
		err = limitf(LimitLayerSize, sc.lim.MaxStream, "declared data ending at offset %d", end)
	}
	if err == nil && e != nil {
		err = sc.add(e)
	}
	if err != nil {
		return false, fmt.Errorf("entry %s: %w", shorten(hdr.Name), err)
	}
	sc.at, sc.prev = end, hdr.Name
	return false, nil
}

// add appends e within the entry and memory limits.
func (sc *scanner) add(e *overlay.Entry) error {
	if err := sc.lim.checkEntry(e); err != nil {
		return err
	}
	if n := len(sc.out.Layer.Entries) + 1; sc.lim.MaxEntries > 0 && n > sc.lim.MaxEntries {
		return limitf(LimitEntries, int64(sc.lim.MaxEntries), "entry number %d", n)
	}
	sc.memory += IndexMemory(e)
	if sc.lim.MaxIndexMemory > 0 && sc.memory > sc.lim.MaxIndexMemory {
		return limitf(LimitIndexMemory, sc.lim.MaxIndexMemory, "index of %d entries taking %d bytes", len(sc.out.Layer.Entries)+1, sc.memory)
	}
	if strings.HasPrefix(path.Base(e.Name), ".wh.") {
		sc.out.Whiteouts++
	}
	sc.out.Layer.Entries = append(sc.out.Layer.Entries, *e)
	return nil
}

// headerError explains a failure of tar.Next: a stream that ends inside
// the previous entry's data is a lie about that entry's size.
func (sc *scanner) headerError(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && sc.prev != "" && sc.sr.pos < sc.at {
		return fmt.Errorf("entry %s: stream ends at offset %d, inside its data (which should end at %d): %w",
			shorten(sc.prev), sc.sr.pos, sc.at, err)
	}
	where := ""
	if sc.prev != "" {
		where = " (after entry " + shorten(sc.prev) + ")"
	}
	return fmt.Errorf("reading tar header at offset %d%s: %w", sc.at, where, err)
}

// scanEntry converts the header Next just returned into an Entry (nil for
// a PAX global header) and returns where the following entry's headers
// start.
func scanEntry(sr *scanReader, hdr *tar.Header) (*overlay.Entry, int64, error) {
	if sr.overflow {
		return nil, 0, errCaptureTooLarge
	}
	rh, err := findMainHeader(sr.capture, sr.from)
	if err != nil {
		return nil, 0, err
	}
	physical, err := physicalSize(hdr, rh)
	if err != nil {
		return nil, 0, err
	}
	// The data section starts after the header block, except that old GNU
	// sparse extension blocks come between the two; a PAX 1.0 sparse map
	// is part of the data section.
	base := rh.mainEnd
	if hdr.Typeflag == tar.TypeGNUSparse {
		base = sr.pos
	}
	end := base + roundBlock(physical)
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil, end, nil
	}
	e, err := entryFromHeader(hdr)
	if err != nil {
		return nil, 0, err
	}
	if e.Type == overlay.TypeRegular {
		e.Offset = sr.pos
		if err := addSparse(e, hdr, rh, sr.pos, base+physical); err != nil {
			return nil, 0, err
		}
	}
	return e, end, nil
}

// physicalSize is the size of the entry's data section in the stream, as
// archive/tar computes it: none for header-only types, else the PAX size
// record or the header's size field (for sparse files: the stored
// fragments plus a PAX 1.0 map, not the file's logical size).
func physicalSize(hdr *tar.Header, rh rawHeader) (int64, error) {
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return 0, nil
	case tar.TypeXGlobalHeader:
		return rh.size, nil
	}
	if s := hdr.PAXRecords["size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad PAX size %q", s)
		}
		return n, nil
	}
	return rh.size, nil
}

func entryType(flag byte) (overlay.Type, bool) {
	switch flag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return overlay.TypeRegular, true
	case tar.TypeDir:
		return overlay.TypeDir, true
	case tar.TypeSymlink:
		return overlay.TypeSymlink, true
	case tar.TypeLink:
		return overlay.TypeHardlink, true
	case tar.TypeChar:
		return overlay.TypeChar, true
	case tar.TypeBlock:
		return overlay.TypeBlock, true
	case tar.TypeFifo:
		return overlay.TypeFifo, true
	}
	return 0, false
}

func entryFromHeader(hdr *tar.Header) (*overlay.Entry, error) {
	typ, ok := entryType(hdr.Typeflag)
	if !ok {
		return nil, fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if err := checkIDs(hdr); err != nil {
		return nil, err
	}
	e := &overlay.Entry{
		Name:      hdr.Name,
		Type:      typ,
		Mode:      uint32(hdr.Mode & 0o7777),
		UID:       uint32(hdr.Uid),
		GID:       uint32(hdr.Gid),
		MTime:     hdr.ModTime.Unix(),
		MTimeNsec: uint32(hdr.ModTime.Nanosecond()),
		Linkname:  hdr.Linkname,
	}
	switch typ {
	case overlay.TypeRegular:
		if hdr.Size < 0 {
			return nil, fmt.Errorf("negative size %d", hdr.Size)
		}
		e.Size = hdr.Size
	case overlay.TypeChar, overlay.TypeBlock:
		e.Devmajor, e.Devminor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	}
	if typ != overlay.TypeSymlink && typ != overlay.TypeHardlink {
		e.Linkname = ""
	}
	xs, err := xattrs(hdr.PAXRecords)
	if err != nil {
		return nil, err
	}
	e.Xattrs = xs
	return e, nil
}

func checkIDs(hdr *tar.Header) error {
	for _, f := range []struct {
		what string
		v    int64
	}{{"uid", int64(hdr.Uid)}, {"gid", int64(hdr.Gid)}, {"device major", hdr.Devmajor}, {"device minor", hdr.Devminor}} {
		if f.v < 0 || f.v > math.MaxUint32 {
			return fmt.Errorf("%s %d out of range 0..%d", f.what, f.v, uint32(math.MaxUint32))
		}
	}
	if hdr.Mode < 0 {
		return fmt.Errorf("negative mode %d", hdr.Mode)
	}
	return nil
}

// xattrs collects SCHILY.xattr.NAME (raw value) and LIBARCHIVE.xattr.NAME
// (URL-encoded name, base64 value) records, sorted by name. When both
// spell the same attribute (libarchive writes both), SCHILY wins.
func xattrs(recs map[string]string) ([]overlay.Xattr, error) {
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // LIBARCHIVE names may collide once unescaped
	byName := map[string]string{}
	for _, k := range keys {
		v := recs[k]
		if name, ok := strings.CutPrefix(k, paxLibarchiveXattr); ok {
			n, err := url.PathUnescape(name)
			if err != nil {
				return nil, fmt.Errorf("bad xattr record %q: %v", k, err)
			}
			val, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
			if err != nil {
				return nil, fmt.Errorf("bad xattr record %q: %v", k, err)
			}
			if _, dup := byName[n]; !dup {
				byName[n] = string(val)
			}
		}
	}
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, paxSchilyXattr); ok {
			byName[name] = v
		}
	}
	if len(byName) == 0 {
		return nil, nil
	}
	xs := make([]overlay.Xattr, 0, len(byName))
	for n, v := range byName {
		if n == "" {
			return nil, errors.New("xattr with an empty name")
		}
		xs = append(xs, overlay.Xattr{Name: n, Value: v})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	return xs, nil
}
