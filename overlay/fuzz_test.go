package overlay

import (
	"errors"
	"testing"
)

// fuzzNames is a small vocabulary so that random stacks collide often.
var fuzzNames = []string{
	"a", "b", "a/b", "a/c", "a/b/c", "./a", "/b", "a/../b", "d", "d/e", "d/e/f",
	".wh.a", "a/.wh.b", "d/.wh..wh..opq", ".wh..wh..opq", ".wh.d", "a/.wh..wh..opq",
	".wh..wh.plnk/x", ".wh.", "..", "a/../../x", ".", "",
}

// stackFrom decodes fuzz input into layers: each 3 bytes are one entry
// (type, name, link target); a type byte of 0xff starts a new layer.
func stackFrom(data []byte) stack {
	var s stack
	var cur []fentry
	flush := func() { s = append(s, tarOf(cur...)); cur = nil }
	for len(data) >= 3 {
		op, name, target := data[0], fuzzNames[int(data[1])%len(fuzzNames)], fuzzNames[int(data[2])%len(fuzzNames)]
		data = data[3:]
		switch op % 8 {
		case 0:
			cur = append(cur, file(name, target, mode(uint32(op)<<4)))
		case 1:
			cur = append(cur, dir(name, mode(uint32(op)<<3)))
		case 2:
			cur = append(cur, symlink(name, target))
		case 3:
			cur = append(cur, hardlink(name, target))
		case 4:
			cur = append(cur, device(name, TypeChar, uint32(op), 1))
		case 5:
			cur = append(cur, fifo(name))
		case 6:
			cur = append(cur, whiteout(name))
		case 7:
			flush()
		}
	}
	flush()
	return s
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte{0, 0, 0, 7, 0, 0, 6, 0, 0})
	f.Add([]byte{1, 9, 0, 0, 10, 1, 3, 1, 10, 7, 0, 0, 6, 9, 0, 3, 0, 10})
	f.Add([]byte{1, 2, 0, 0, 4, 0, 7, 0, 0, 0, 13, 0, 0, 9, 0, 7, 0, 0, 2, 9, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := stackFrom(data)
		tr, err := Merge(s.layers())
		if err != nil {
			if _, ok := err.(*EntryError); !ok {
				t.Fatalf("Merge error %T is not an *EntryError: %v", err, err)
			}
			return
		}
		checkInvariants(t, tr)
		checkSources(t, tr, s)
		for i := range s {
			if _, err := History(s.layers(), fuzzNames[i%len(fuzzNames)]); err != nil && !isEscape(err) {
				t.Fatalf("History fails where Merge did not: %v", err)
			}
		}
	})
}

func isEscape(err error) bool { return err != nil && err.Error() != "" && errors.Is(err, errEscapes) }

// checkSources verifies that every file's content points at an entry of
// the layer it claims.
func checkSources(t *testing.T, tr *Tree, s stack) {
	t.Helper()
	_ = tr.Walk(func(p string, n *Node) error {
		if n.Type() != TypeRegular {
			return nil
		}
		for _, e := range s[n.Layer()].layer.Entries {
			if e.Offset == n.Offset() && e.Size == n.Size() && e.Type == TypeRegular {
				return nil
			}
		}
		t.Errorf("%s: no regular entry at layer %d offset %d", p, n.Layer(), n.Offset())
		return nil
	})
}
