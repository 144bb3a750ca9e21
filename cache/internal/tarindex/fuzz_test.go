package tarindex

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/overlay"
)

// FuzzScanTar feeds arbitrary bytes to the scanner, with and without
// small limits: it must not panic, whatever it accepts must point inside
// the stream and respect the limits, and limits may only turn a success
// into a *LimitError, never change what is indexed.
func FuzzScanTar(f *testing.F) {
	f.Add(tarOf(f, file("a", "hello"), dir("d/"), symlink("l", "a")))
	f.Add(tarOf(f, file("x", "y", withXattr("user.k", "v"), withPAX("GNU.sparse.map", "0,1"), withPAX("GNU.sparse.major", "0"), withPAX("GNU.sparse.minor", "1"))))
	f.Add(rawTar(f, 'S', "old-sparse"))
	f.Add(tarOf(f, file(strings.Repeat("n/", 40)+"f", "deep"), hardlink("h", "a"), file("b", strings.Repeat("z", 600))))
	f.Add(tarOf(f, file("x", "", withXattr("user.big", strings.Repeat("v", 300))), file(".wh.gone", "")))
	lim := Limits{MaxEntries: 3, MaxName: 64, MaxXattr: 100, MaxIndexMemory: 1000, MaxStream: 4096}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Scan(bytes.NewReader(b))
		lres, lerr := ScanLimited(bytes.NewReader(b), lim)
		var le *LimitError
		switch {
		case err != nil && lerr == nil:
			t.Fatalf("accepted within limits, rejected without: %v", err)
		case err == nil && lerr != nil && !errors.As(lerr, &le):
			t.Fatalf("accepted without limits, rejected with an error that is no limit: %v", lerr)
		}
		if err == nil {
			checkBounds(t, res, int64(len(b)))
		}
		if lerr == nil {
			checkBounds(t, lres, int64(len(b)))
			checkLimits(t, lres, lim)
			if len(lres.Layer.Entries) != len(res.Layer.Entries) {
				t.Fatalf("limits changed the entries: %d vs %d", len(lres.Layer.Entries), len(res.Layer.Entries))
			}
		}
	})
}

func checkBounds(t *testing.T, res *Result, n int64) {
	t.Helper()
	for _, e := range res.Layer.Entries {
		if len(e.Sparse) == 0 && e.Offset+e.Size > n {
			t.Fatalf("%q: data %d+%d beyond the %d-byte stream", e.Name, e.Offset, e.Size, n)
		}
		for _, x := range e.Sparse {
			if x.TarOff+x.Len > n || x.Off+x.Len > e.Size {
				t.Fatalf("%q: extent %+v out of bounds", e.Name, x)
			}
		}
	}
}

func checkLimits(t *testing.T, res *Result, lim Limits) {
	t.Helper()
	if len(res.Layer.Entries) > lim.MaxEntries {
		t.Fatalf("%d entries over the limit", len(res.Layer.Entries))
	}
	var mem int64
	for i := range res.Layer.Entries {
		e := &res.Layer.Entries[i]
		mem += IndexMemory(e)
		if len(e.Name) > lim.MaxName || (e.Type == overlay.TypeSymlink || e.Type == overlay.TypeHardlink) && len(e.Linkname) > lim.MaxName {
			t.Fatalf("%q: name or target over the limit", e.Name)
		}
		for _, x := range e.Xattrs {
			if len(x.Value) > lim.MaxXattr || len(x.Name) > xattrNameMax {
				t.Fatalf("%q: xattr %q over the limit", e.Name, x.Name)
			}
		}
	}
	if mem > lim.MaxIndexMemory {
		t.Fatalf("index memory %d over the limit", mem)
	}
}
