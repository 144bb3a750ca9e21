package tarindex

import (
	"bytes"
	"testing"
)

// FuzzScanTar feeds arbitrary bytes to the scanner: it must not panic, and
// whatever it accepts must point inside the stream.
func FuzzScanTar(f *testing.F) {
	f.Add(tarOf(f, file("a", "hello"), dir("d/"), symlink("l", "a")))
	f.Add(tarOf(f, file("x", "y", withXattr("user.k", "v"), withPAX("GNU.sparse.map", "0,1"), withPAX("GNU.sparse.major", "0"), withPAX("GNU.sparse.minor", "1"))))
	f.Add(rawTar(f, 'S', "old-sparse"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Scan(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, e := range res.Layer.Entries {
			if len(e.Sparse) == 0 && e.Offset+e.Size > int64(len(b)) {
				t.Fatalf("%q: data %d+%d beyond the %d-byte stream", e.Name, e.Offset, e.Size, len(b))
			}
			for _, x := range e.Sparse {
				if x.TarOff+x.Len > int64(len(b)) || x.Off+x.Len > e.Size {
					t.Fatalf("%q: extent %+v out of bounds", e.Name, x)
				}
			}
		}
	})
}
