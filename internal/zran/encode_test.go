package zran

import (
	"bytes"
	"errors"
	"testing"
)

func testIndex(t *testing.T) ([]byte, *Index) {
	data := synthBinary(600<<10, 3)
	gz := gzipMembers(t, data, 6, true)
	_, x := index(t, gz, 100<<10)
	return gz, x
}

func TestIndexRoundTrip(t *testing.T) {
	_, x := testIndex(t)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var y Index
	if err := y.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if y.Size() != x.Size() || y.CompressedSize() != x.CompressedSize() || y.Span() != x.Span() ||
		y.Members() != x.Members() || y.NumSpans() != x.NumSpans() {
		t.Fatalf("fields differ: %+v vs %+v", y, x)
	}
	for i := range x.cps {
		a, c := x.cps[i], y.cps[i]
		if a.in != c.in || a.out != c.out || a.wlen != c.wlen || !bytes.Equal(a.win, c.win) {
			t.Fatalf("checkpoint %d differs", i)
		}
	}
	b2, _ := y.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not deterministic")
	}
	if x.Members() != 3 {
		t.Fatalf("members %d, want 3", x.Members())
	}
}

// TestIndexRejects checks that damaged encodings fail with ErrFormat: every
// truncation, every single bit flip (the checksum), a new version, and
// values that break the invariants behind a valid checksum.
func TestIndexRejects(t *testing.T) {
	_, x := testIndex(t)
	b, _ := x.MarshalBinary()
	var y Index
	for n := range len(b) {
		if err := y.UnmarshalBinary(b[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range len(b) {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		if err := y.UnmarshalBinary(bad); !errors.Is(err, ErrFormat) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	broken := map[string]func(z *Index){
		"first checkpoint not at 0": func(z *Index) { z.cps[0].out = 1 },
		"not increasing":            func(z *Index) { z.cps[2].out = z.cps[1].out },
		"in not increasing":         func(z *Index) { z.cps[2].in = z.cps[1].in },
		"past the data":             func(z *Index) { z.size = z.cps[len(z.cps)-1].out },
		"past the compressed data":  func(z *Index) { z.dataEnd = z.cps[len(z.cps)-1].in / 8 },
		"window longer than output": func(z *Index) { z.cps[0].wlen = 5 },
		"window without bytes":      func(z *Index) { z.cps[1].win = nil },
		"impossible ratio":          func(z *Index) { z.size *= 200 },
		"zero span":                 func(z *Index) { z.span = 0 },
		"no members":                func(z *Index) { z.members = 0 },
	}
	for name, breakIt := range broken {
		z := *x
		z.cps = append([]checkpoint(nil), x.cps...)
		breakIt(&z)
		enc, _ := z.MarshalBinary()
		if err := y.UnmarshalBinary(enc); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	future := bytes.Clone(b)
	future[len(magic)] = formatVersion + 1
	if err := y.UnmarshalBinary(future); !errors.Is(err, ErrFormat) {
		t.Errorf("future version: %v", err)
	}
}

// TestBadWindow: a window that does not decode to its length is an error
// at read time, not wrong bytes.
func TestBadWindow(t *testing.T) {
	gz, x := testIndex(t)
	z := *x
	z.cps = append([]checkpoint(nil), x.cps...)
	z.cps[1].win = deflate(t, []byte("short"), 6)
	ra := NewReaderAt(bytes.NewReader(gz), &z)
	if _, err := ra.DecodeSpan(1); !errors.Is(err, ErrFormat) {
		t.Fatalf("DecodeSpan: %v", err)
	}
	z.cps[1].win = []byte{0xff, 0xff}
	if _, err := ra.DecodeSpan(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeSpan: %v", err)
	}
}
