package overlay

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// checkPartials checks every Partial of s against the complete merge: a
// path a Partial decides must have the same node in the complete tree.
// It returns how many paths the Partials decided.
func checkPartials(t *testing.T, s stack) int {
	t.Helper()
	layers := s.layers()
	full, err := Merge(layers)
	if err != nil {
		return 0 // the mount fails once every layer is in, whatever was served
	}
	var paths []string
	full.Walk(func(p string, _ *Node) error { paths = append(paths, p); return nil })
	decided := 0
	for low := len(layers) - 1; low >= 0; low-- {
		p, err := MergePartial(layers, low)
		if err != nil {
			t.Fatalf("layers %d..: MergePartial fails where Merge does not: %v", low, err)
		}
		if got, ok := p.Root(); ok {
			if d := nodeDiff(got, full.Root()); d != "" {
				t.Fatalf("layers %d..: root decided with %s", low, d)
			}
		}
		ps := slices.Clone(paths)
		walkInodes(p.m.root, "", func(path string) { ps = append(ps, path) })
		for _, path := range ps {
			got, ok := p.Get(path)
			if !ok {
				continue
			}
			decided++
			want := full.Get(path)
			if want == nil {
				t.Fatalf("layers %d..: %q decided as %v, absent from the complete tree", low, path, got.Type())
			}
			if d := nodeDiff(got, want); d != "" {
				t.Fatalf("layers %d..: %q decided with %s", low, path, d)
			}
		}
	}
	return decided
}

// walkInodes calls fn with every path of a merge in progress.
func walkInodes(dir *inode, prefix string, fn func(string)) {
	for name, k := range dir.kids {
		p := joinPath(prefix, name)
		fn(p)
		if k.isDir() {
			walkInodes(k, p, fn)
		}
	}
}

// nodeDiff compares a decided node with the complete tree's.
func nodeDiff(got, want *Node) string {
	type attrs struct {
		typ            Type
		mode, uid, gid uint32
		mtime          int64
		nsec           uint32
		size, offset   int64
		layer          int32
		target         string
		major, minor   uint32
		stino          uint64
		xattrs         string
		sparse         string
	}
	of := func(n *Node) attrs {
		return attrs{n.typ, n.mode, n.uid, n.gid, n.mtime, n.nsec, n.size, n.offset, n.layer, n.target,
			n.major, n.minor, n.stino, fmtAny(n.Xattrs()), fmtAny(n.Sparse())}
	}
	if g, w := of(got), of(want); g != w {
		return "attributes " + fmtAny(g) + ", want " + fmtAny(w)
	}
	if got.Type() != TypeDir && got.Nlink() != want.Nlink() {
		return "nlink " + fmtAny(got.Nlink()) + ", want " + fmtAny(want.Nlink())
	}
	return ""
}

// TestPartialRandom checks Partials of many random stacks drawn from the
// fuzz vocabulary (symlinked parents, whiteouts, opaque markers,
// hardlinks, missing parents).
func TestPartialRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for _, parents := range []bool{false, true} {
		decided := 0
		for i := 0; i < n; i++ {
			data := make([]byte, 3*(3+rng.Intn(30)))
			for j := range data {
				data[j] = byte(rng.Intn(256))
			}
			for j := 0; j < len(data); j += 3 { // fewer layer breaks, more entries per layer
				if data[j]%8 == 7 && rng.Intn(3) > 0 {
					data[j]--
				}
			}
			s := stackFrom(data)
			if parents {
				s = withParents(s)
			}
			decided += checkPartials(t, s)
		}
		if min := map[bool]int{false: n / 8, true: n / 2}[parents]; decided < min { // something to check
			t.Fatalf("parents %v: only %d paths decided in %d stacks", parents, decided, n)
		}
		t.Logf("parents %v: %d paths decided in %d stacks", parents, decided, n)
	}
}

// withParents adds to every layer an entry for each parent directory of
// its entries, before them, as image builders write layers.
func withParents(s stack) stack {
	var out stack
	for _, f := range s {
		var es []fentry
		for _, e := range f.layer.Entries {
			p, err := cleanName(e.Name)
			if err == nil {
				for i := 0; i < len(p); i++ {
					if p[i] == '/' {
						es = append(es, dir(p[:i]))
					}
				}
			}
			es = append(es, fentry{Entry: e, content: string(f.data[e.Offset : e.Offset+e.Size])})
		}
		out = append(out, tarOf(es...))
	}
	return out
}

func FuzzPartial(f *testing.F) {
	f.Add([]byte{2, 0, 3, 7, 0, 0, 0, 2, 0, 7, 0, 0, 1, 0, 0, 0, 3, 0})
	f.Add([]byte{1, 9, 0, 0, 10, 1, 3, 1, 10, 7, 0, 0, 6, 9, 0, 3, 0, 10})
	f.Fuzz(func(t *testing.T, data []byte) { checkPartials(t, stackFrom(data)) })
}

// TestPartialDecides shows what a Partial decides on images shaped like
// real ones (every layer names the parents of its entries) and where it
// must wait.
func TestPartialDecides(t *testing.T) {
	base := tarOf(dir("."), dir("usr"), dir("usr/bin"), file("usr/bin/sh", "sh"), dir("usr/lib"), symlink("lib", "usr/lib"),
		symlink("x", "usr"), dir("etc"), file("etc/old", "o"))
	top := tarOf(dir("usr"), dir("usr/bin"), file("usr/bin/app", "app", mode(0755)), hardlink("usr/bin/app2", "usr/bin/app"),
		dir("etc"), whiteout("etc/old"), file("lib/x", "in usr/lib"), dir("opt"), file("opt/y", "y"))
	s := stack{base, top}
	checkPartials(t, s)
	p, err := MergePartial(s.layers(), 1)
	if err != nil {
		t.Fatal(err)
	}
	full := mustMerge(t, s)
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{"usr/bin/app", true},  // the top layer's, under parents it names
		{"usr/bin/app2", true}, // a hardlink: nlink 2 is final
		{"usr", true},          // a directory: exists, attributes final
		{"opt/y", true},
		{"usr/bin/sh", false}, // the base layer's
		{"etc/old", false},    // absent: never decided
		{"lib/x", false},      // lib is a symlink below: x lands in usr/lib
		{"", false},           // the root
	} {
		n, ok := p.Get(c.path)
		if ok != c.ok {
			t.Errorf("Get(%q) decided %v, want %v", c.path, ok, c.ok)
			continue
		}
		if ok && n.Type() != TypeDir && n.Nlink() != full.Get(c.path).Nlink() {
			t.Errorf("Get(%q): nlink %d, want %d", c.path, n.Nlink(), full.Get(c.path).Nlink())
		}
	}
	if _, ok := p.Root(); ok {
		t.Errorf("root decided, but only the base layer has an entry for it")
	}
	if n, _ := p.Get("usr/bin/app2"); n == nil || n.Nlink() != 2 || n.StIno() != full.Get("usr/bin/app").StIno() {
		t.Errorf("hardlink: got %+v", n)
	}
}

// TestPartialUnsureReplaces: an entry of an upper layer whose parent is
// missing may land anywhere once the lower layers are known (here, x is a
// symlink to usr below), so it makes what the layers under it decided
// undecided again.
func TestPartialUnsureReplaces(t *testing.T) {
	base := tarOf(symlink("x", "usr"))
	mid := tarOf(dir("usr"), file("usr/bash", "old"))
	top := tarOf(file("x/bash", "new"))
	s := stack{base, mid, top}
	checkPartials(t, s)
	if got := mustMerge(t, s).Get("usr/bash"); got == nil || got.Layer() != 2 {
		t.Fatalf("complete tree: usr/bash from layer %v, want 2", got)
	}
	p, err := MergePartial(s.layers(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := p.Get("usr/bash"); ok {
		t.Errorf("usr/bash decided (layer %d)", n.Layer())
	}
	// A directory entry for x in the top layer makes it sure: it replaces
	// whatever x is below.
	s[2] = tarOf(dir("x"), file("x/bash", "new"))
	checkPartials(t, s)
	p, err = MergePartial(s.layers(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"usr/bash", "x/bash"} {
		if _, ok := p.Get(path); !ok {
			t.Errorf("%s undecided", path)
		}
	}
}

// TestPartialHiddenNames: stacks where a name a whiteout removed comes
// back in the complete merge through an unsure operation, or where a
// hardlink finds its target only among what an unsure whiteout removed.
// MergePartial must not fail on them, nor decide wrongly.
func TestPartialHiddenNames(t *testing.T) {
	for _, s := range []stack{
		{tarOf(symlink("s", "D")), tarOf(dir("D"), file("D/n", "x")), tarOf(whiteout("D/n"), file("s/n/f", "y")), tarOf(hardlink("h", "D/n/f"))},
		{tarOf(dir("b"), file("b/c", "x")), tarOf(whiteout("b"), file("b", "f"), hardlink("h", "b/c"))},
	} {
		if _, err := Merge(s.layers()); err != nil {
			t.Fatalf("Merge: %v", err)
		}
		checkPartials(t, s)
	}
}

// TestStIno checks the numbering users see: 1 for the root, then layer by
// layer from the top, a hardlink sharing its target's number, directories
// no layer names last.
func TestStIno(t *testing.T) {
	s := stack{
		tarOf(dir("a"), file("a/f", "1"), file("g/h", "2")), // 5 (a is layer 2's), 6, 7; g: 8
		tarOf(file("b", "3"), hardlink("c", "b")),           // 3, 4 (c is b)
		tarOf(dir("a")), // 2
	}
	tr := mustMerge(t, s)
	want := map[string]uint64{"": 1, "a": 2, "b": 3, "c": 3, "a/f": 6, "g/h": 7, "g": 8}
	for p, w := range want {
		if got := tr.Get(p).StIno(); got != w {
			t.Errorf("%q: StIno %d, want %d", p, got, w)
		}
	}
	back, err := UnmarshalTree(tr.MarshalBinary(3), 3)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		if got := back.Get(p).StIno(); got != w {
			t.Errorf("saved tree: %q: StIno %d, want %d", p, got, w)
		}
	}
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }
