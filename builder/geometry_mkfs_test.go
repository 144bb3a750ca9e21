package builder

import (
	"testing"
)

// TestGeometryMatchesMke2fs builds empty images of several geometries
// with the real mke2fs and compares block, inode and used-block counts
// with the layout: the overhead part of every estimate.
func TestGeometryMatchesMke2fs(t *testing.T) {
	requireE2fsprogs(t)
	empty := t.TempDir()
	for _, c := range []struct {
		size    int64 // bytes
		inodes  uint64
		journal bool
	}{
		{16 << 20, 1000, true},
		{64 << 20, 40000, true}, // two groups for the inodes
		{(3*32768 + 5000) * 4096, 70000, true},
		{(32768 + 30) * 4096, 100, false}, // last group too small: grown
		{1200 << 20, 200000, true},        // 10 groups, backups in 0 1 3 5 7 9
		{40 << 20, 100000, false},         // four small groups
	} {
		res, _ := buildDir(t, empty, Options{Size: c.size, Inodes: c.inodes, NoJournal: !c.journal})
		l := res.Layout
		t.Logf("size %d inodes %d: %d blocks in groups of %d, %d inodes, %d used (estimate %d)",
			c.size, c.inodes, res.Blocks, l.BlocksPerGroup, res.Inodes, res.UsedBlocks, l.Need)
		if res.Blocks != l.Blocks || res.Inodes != l.Inodes {
			t.Errorf("size %d inodes %d: mke2fs made %d blocks, %d inodes; layout said %d, %d",
				c.size, c.inodes, res.Blocks, res.Inodes, l.Blocks, l.Inodes)
		}
		if res.UsedBlocks != l.Need {
			t.Errorf("size %d inodes %d: %d blocks used, estimate %d", c.size, c.inodes, res.UsedBlocks, l.Need)
		}
	}
}
