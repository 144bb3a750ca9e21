package overlay

import (
	"bytes"
	"errors"
	"testing"
)

func TestTreeRoundTrip(t *testing.T) {
	s := stack{
		tarOf(dir("etc"), file("etc/passwd", "root:x:0:0\n", mode(0600), owner(0, 42), mtime(-5)),
			symlink("lib", "usr/lib"), device("dev/sda", TypeBlock, 8, 1), fifo("run/f"),
			file("bin/ping", "p", xattr("security.capability", "\x01\x00\x00\x02"), xattr("user.a", "")),
			hardlink("bin/ping2", "bin/ping"), dir("usr/lib", mode(0700))),
		tarOf(whiteout("etc/passwd"), file("usr/lib/x", "x", mode(04755))),
	}
	tr := mustMerge(t, s)
	data := tr.MarshalBinary(len(s))
	back, err := UnmarshalTree(data, len(s))
	if err != nil {
		t.Fatal(err)
	}
	if d := diffLines(dump(t, back, s), dump(t, tr, s)); d != "" {
		t.Errorf("decoded tree differs:\n%s", d)
	}
	checkInvariants(t, back)
	if back.Len() != tr.Len() || back.HasXattrs() != tr.HasXattrs() {
		t.Error("size or xattr flag changed")
	}
	_ = tr.Walk(func(p string, n *Node) error {
		m := back.Get(p)
		if m.Ino() != n.Ino() || m.Nlink() != n.Nlink() || m.Layer() != n.Layer() || m.Offset() != n.Offset() || m.MTime() != n.MTime() {
			t.Errorf("%s: attributes changed", p)
		}
		return nil
	})
	if !bytes.Equal(back.MarshalBinary(len(s)), data) {
		t.Error("re-encoding is not identical")
	}
}

func TestTreeSparseRoundTrip(t *testing.T) {
	l := &Layer{Entries: []Entry{{Name: "s", Type: TypeRegular, Mode: 0644, Size: 100, Offset: 512,
		Sparse: []Extent{{Off: 10, Len: 5, TarOff: 512}, {Off: 100, Len: 0, TarOff: 517}}}}}
	tr, err := Merge([]*Layer{l})
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalTree(tr.MarshalBinary(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Get("s").Sparse(); len(got) != 2 || got[0] != (Extent{10, 5, 512}) {
		t.Errorf("sparse map = %v", got)
	}
}

func TestUnmarshalTreeRejects(t *testing.T) {
	s := stack{tarOf(dir("d"), file("d/a", "a"), file("b", "b"))}
	good := mustMerge(t, s).MarshalBinary(1)
	if _, err := UnmarshalTree(good, -1); err != nil {
		t.Errorf("any layer count: %v", err)
	}
	if _, err := UnmarshalTree(good, 2); err == nil {
		t.Error("a tree of 1 layer accepted for 2")
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		if _, err := UnmarshalTree(bad, 1); !errors.Is(err, errTreeCorrupt) {
			t.Fatalf("byte %d flipped: err = %v; want errTreeCorrupt", i, err)
		}
	}
	for n := 0; n < len(good); n++ {
		if _, err := UnmarshalTree(good[:n], 1); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}

// FuzzUnmarshalTree feeds damaged tree files (with valid checksums, so
// the structural checks are what is tested): never a panic, and a tree
// that decodes satisfies the invariants.
func FuzzUnmarshalTree(f *testing.F) {
	s := stack{tarOf(dir("d"), file("d/a", "a"), hardlink("d/b", "d/a"), symlink("l", "d"), file("x", "x", xattr("user.k", "v")))}
	f.Add(mustMerge(f, s).MarshalBinary(1))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		body := data[:len(data)-4]
		data = appendCRC(body)
		tr, err := UnmarshalTree(data, 1)
		if err != nil {
			return
		}
		walkBounded(t, tr)
	})
}

func appendCRC(body []byte) []byte {
	out := bytes.Clone(body)
	var sum [4]byte
	c := crc32Sum(out)
	sum[0], sum[1], sum[2], sum[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	return append(out, sum[:]...)
}

// walkBounded walks a decoded tree and fails if the walk does not end
// within one visit per dirent (a cycle would).
func walkBounded(t *testing.T, tr *Tree) {
	visits := 0
	_ = tr.Walk(func(p string, n *Node) error {
		if visits++; visits > len(tr.dirents)+1 {
			t.Fatal("walk does not end: the tree has a cycle")
		}
		_ = tr.Lookup(n, "a")
		return nil
	})
}
