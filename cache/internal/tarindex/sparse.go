package tarindex

import (
	"archive/tar"
	"errors"
	"fmt"

	"github.com/ocifs/ocifs/overlay"
)

// sparseMap returns the fragments of a GNU sparse entry (old GNU 'S' or
// PAX 0.0, 0.1, 1.0), following archive/tar's rules for recognizing them;
// ok is false for an ordinary file.
func sparseMap(hdr *tar.Header, rh rawHeader) (frags []sparseFrag, ok bool, err error) {
	if hdr.Typeflag == tar.TypeGNUSparse {
		frags, err = oldGNUSparseMap(rh)
		return frags, true, err
	}
	recs := hdr.PAXRecords
	major, minor := recs["GNU.sparse.major"], recs["GNU.sparse.minor"]
	switch {
	case major == "1" && minor == "0":
		frags, err = paxSparseMap10(rh.after)
		return frags, true, err
	case major == "0" && (minor == "0" || minor == "1"), major == "" && minor == "" && recs["GNU.sparse.map"] != "":
		frags, err = paxSparseMap01(recs["GNU.sparse.map"])
		return frags, true, err
	}
	return nil, false, nil
}

// addSparse fills e.Sparse for a sparse entry. The fragments' data lie
// back to back from dataStart, in map order. A sparse file whose one
// fragment covers it all is stored as a plain file; one with no data at
// all gets a single empty extent at its end, so that len(Sparse) > 0 marks
// every sparse file.
func addSparse(e *overlay.Entry, hdr *tar.Header, rh rawHeader, dataStart, dataEnd int64) error {
	frags, ok, err := sparseMap(hdr, rh)
	if err != nil || !ok {
		return err
	}
	avail := dataEnd - dataStart // stored bytes after the map
	var exts []overlay.Extent
	var stored, last int64
	for _, f := range frags {
		if f.off < last || f.len < 0 || f.off > e.Size || f.len > e.Size-f.off {
			return fmt.Errorf("sparse fragment %d+%d out of order or beyond size %d", f.off, f.len, e.Size)
		}
		if f.len > avail-stored {
			return errors.New("sparse fragments exceed the stored data")
		}
		if f.len > 0 {
			exts = append(exts, overlay.Extent{Off: f.off, Len: f.len, TarOff: dataStart + stored})
		}
		stored += f.len
		last = f.off + f.len
	}
	switch {
	case len(exts) == 1 && exts[0].Off == 0 && exts[0].Len == e.Size:
		e.Sparse = nil
	case len(exts) == 0 && e.Size > 0:
		e.Sparse = []overlay.Extent{{Off: e.Size, Len: 0, TarOff: dataStart}}
	default:
		e.Sparse = exts
	}
	return nil
}
