package overlay

import (
	"errors"
	"io"
)

var errNotRegular = errors.New("not a regular file")

// ReadAt reads a regular file's content at offset off through r, the
// image's layers. It returns io.EOF when fewer than len(p) bytes remain,
// like io.ReaderAt. Holes of sparse files read as zeros.
func (n *Node) ReadAt(r LayerReader, p []byte, off int64) (int, error) {
	if n.typ != TypeRegular {
		return 0, errNotRegular
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= n.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := n.size - off; int64(want) > rest {
		p = p[:rest]
	}
	var got int
	var err error
	if sp := n.Sparse(); sp != nil {
		got, err = readSparse(r, int(n.layer), sp, p, off)
	} else {
		got, err = readFull(r, int(n.layer), p, n.offset+off)
	}
	if err == nil && got < want {
		err = io.EOF
	}
	return got, err
}

// readFull reads len(p) bytes at off, retrying short reads.
func readFull(r LayerReader, layer int, p []byte, off int64) (int, error) {
	got := 0
	for got < len(p) {
		k, err := r.ReadLayerAt(layer, p[got:], off+int64(got))
		got += k
		if err != nil {
			if err == io.EOF && got < len(p) {
				err = io.ErrUnexpectedEOF
			}
			if got == len(p) {
				err = nil
			}
			return got, err
		}
		if k == 0 {
			return got, io.ErrNoProgress
		}
	}
	return got, nil
}

// readSparse fills p, which starts at logical offset off, from the data
// extents that overlap it and zeros elsewhere.
func readSparse(r LayerReader, layer int, sp []Extent, p []byte, off int64) (int, error) {
	clear(p)
	end := off + int64(len(p))
	for _, x := range sp {
		lo, hi := max(x.Off, off), min(x.Off+x.Len, end)
		if lo >= hi {
			continue
		}
		if _, err := readFull(r, layer, p[lo-off:hi-off], x.TarOff+(lo-x.Off)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
