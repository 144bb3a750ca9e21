package builder

import (
	"testing"
)

func TestHasSuper(t *testing.T) {
	var got []uint64
	for i := range uint64(130) {
		if hasSuper(i) {
			got = append(got, i)
		}
	}
	want := []uint64{0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125}
	if len(got) != len(want) {
		t.Fatalf("groups with superblocks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("groups with superblocks %v, want %v", got, want)
		}
	}
}

// TestGeometryFigures pins layoutOf to figures read from mke2fs 1.47.0
// (dumpe2fs -h); TestGeometryMatchesMke2fs checks more against the real
// program.
func TestGeometryFigures(t *testing.T) {
	g, err := layoutOf(16384, 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.ipg != 1008 || g.itable != 63 || g.groups != 1 {
		t.Errorf("16384 blocks, 1000 inodes: %+v; mke2fs makes 1008 inodes per group, 63 table blocks", g)
	}
	// More inodes than one group counts: two small groups, not two big.
	g, err = layoutOf(4600, 50016, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.groups != 2 || g.bpg != 2304 || g.blocks != 4608 || g.lastSmall {
		t.Errorf("4600 blocks, 50016 inodes: %+v", g)
	}
	g, err = layoutOf(4600, 50016, true)
	if err != nil || g.bpg != 2296 || g.blocks != 4592 {
		t.Errorf("fixed 4600 blocks, 50016 inodes: %+v, %v", g, err)
	}
	// A last group too small for its metadata is grown, not dropped.
	g, err = grow(32768+10, 100)
	if err != nil || g.lastSmall || g.blocks != 32768+g.lastGroupOverhead()+50 {
		t.Errorf("32778 blocks: grown to %+v, %v", g, err)
	}
}
