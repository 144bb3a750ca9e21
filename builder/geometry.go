package builder

import "fmt"

// geometry is the layout mke2fs gives a filesystem of a number of blocks
// and inodes with Build's parameters (4 KiB blocks, 256-byte inodes,
// 64-bit group descriptors, sparse_super, flex_bg, no resize_inode),
// following ext2fs_initialize. A group counts at most 32768 inodes (one
// bitmap block), so an image with more inodes than its 32768-block groups
// can count gets smaller groups, chosen here and passed to mke2fs with -g
// (left to itself, mke2fs shrinks the groups 8 blocks at a time and then
// drops the small last group it made, over and over). A last group too
// small for its own metadata would be dropped by mke2fs, which is why
// grow() exists.
type geometry struct {
	blocks    uint64 // block count
	bpg       uint64 // blocks per group
	groups    uint64
	ipg       uint64 // inodes per group, filling whole inode table blocks
	itable    uint64 // inode table blocks per group
	gdt       uint64 // group descriptor blocks (per copy)
	overhead  uint64 // superblocks, descriptors, bitmaps and inode tables
	lastSmall bool   // mke2fs would drop the last group
}

const (
	maxBlocksPerGroup = blockSize * 8
	maxInodesPerGroup = blockSize * 8
	descSize          = 64
	inodesPerBlock    = blockSize / inodeSize
)

// layoutOf computes the geometry of a filesystem of about blocks blocks
// and at least inodes inodes. Small groups hold the same number of blocks
// each, a multiple of 8, so blocks is rounded up to whole groups, or down
// when down is set (a fixed size).
func layoutOf(blocks, inodes uint64, down bool) (geometry, error) {
	if blocks == 0 {
		return geometry{}, fmt.Errorf("filesystem of 0 blocks")
	}
	g := geometry{bpg: maxBlocksPerGroup, groups: ceilDiv(blocks, maxBlocksPerGroup)}
	if need := ceilDiv(inodes, maxInodesPerGroup); need > g.groups {
		g.groups = need
		g.bpg = ceilDiv(ceilDiv(blocks, need), 8) * 8
		if down {
			g.bpg = blocks / need / 8 * 8
		}
		blocks = g.bpg * g.groups
	}
	g.blocks = blocks
	g.itable = ceilDiv(ceilDiv(inodes, g.groups)*inodeSize, blockSize)
	g.ipg = g.itable * inodesPerBlock
	g.gdt = ceilDiv(g.groups*descSize, blockSize)
	g.overhead = g.groups * (2 + g.itable)
	for i := uint64(0); i < g.groups; i++ {
		if hasSuper(i) {
			g.overhead += 1 + g.gdt
		}
	}
	if rem := blocks % g.bpg; rem != 0 && rem < g.lastGroupOverhead()+50 {
		g.lastSmall = true
	}
	if g.bpg < g.lastGroupOverhead()+50 {
		g.lastSmall = true // every group is too small
	}
	return g, nil
}

// lastGroupOverhead is mke2fs's bound on the last group's own metadata.
func (g geometry) lastGroupOverhead() uint64 {
	o := 3 + g.itable
	if hasSuper(g.groups - 1) {
		o += 1 + g.gdt
	}
	return o
}

// grow returns the smallest block count from blocks up whose last group
// mke2fs keeps.
func grow(blocks, inodes uint64) (geometry, error) {
	for {
		g, err := layoutOf(blocks, inodes, false)
		if err != nil || !g.lastSmall {
			return g, err
		}
		if g.bpg < g.lastGroupOverhead()+50 {
			blocks = g.groups * (g.lastGroupOverhead() + 50)
			continue
		}
		blocks += g.lastGroupOverhead() + 50 - blocks%g.bpg
	}
}

// inodes is the inode count mke2fs ends up with.
func (g geometry) inodes() uint64 { return g.ipg * g.groups }

// hasSuper reports whether group i holds a superblock backup under
// sparse_super: groups 0 and 1 and the powers of 3, 5 and 7.
func hasSuper(i uint64) bool {
	if i <= 1 {
		return true
	}
	for _, b := range []uint64{3, 5, 7} {
		n := b
		for n < i {
			n *= b
		}
		if n == i {
			return true
		}
	}
	return false
}
