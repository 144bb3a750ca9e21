package builder

import (
	"fmt"

	"github.com/ocifs/ocifs/overlay"
)

// Layout is the filesystem Build asks mke2fs for, with the estimate it
// comes from.
type Layout struct {
	// Content is what the tree needs (data, directories, ...).
	Content Content
	// Blocks is the filesystem size in 4 KiB blocks.
	Blocks uint64
	// FileSize is the image file's size: Blocks*4096, or exactly the
	// fixed size asked for (the filesystem may then end a little before
	// the file: mke2fs leaves out a last group too small for its own
	// metadata, and small groups hold a multiple of 8 blocks).
	FileSize int64
	// Inodes is the inode count (what mke2fs makes of -N, rounded up to
	// whole inode table blocks).
	Inodes uint64
	// BlocksPerGroup is the block group size (32768 unless the inodes
	// need more, smaller groups).
	BlocksPerGroup uint64
	// Journal is the journal size in blocks (0 for none).
	Journal uint64
	// Overhead is the blocks of superblocks, group descriptors, bitmaps
	// and inode tables.
	Overhead uint64
	// Need is the estimated blocks in use after the build: an upper bound
	// for ordinary content (Content.Blocks + Journal + Overhead).
	Need uint64
}

// Size returns the filesystem size in bytes.
func (l *Layout) Size() int64 { return int64(l.Blocks) * blockSize }

// NeedSize returns the estimated used space in bytes.
func (l *Layout) NeedSize() int64 { return int64(l.Need) * blockSize }

const (
	// bytesPerFreeInode is how much free space gets one extra inode,
	// mke2fs's own default inode ratio.
	bytesPerFreeInode = 16384
	minJournal        = 1024  // blocks (4 MiB): jbd2's minimum
	maxJournal        = 16384 // blocks (64 MiB)
)

// Plan sizes the ext4 image for t: it measures the tree, picks a journal,
// an inode count and a block count that hold the content plus the
// requested headroom, and accounts for the filesystem's own metadata.
// It runs no program and touches no file.
func Plan(t *overlay.Tree, opts Options) (*Layout, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c, err := countTree(t)
	if err != nil {
		return nil, err
	}
	l := &Layout{Content: c}
	inodes, err := opts.inodeCount(c)
	if err != nil {
		return nil, err
	}
	if opts.Size > 0 {
		return l, l.fixed(uint64(opts.Size)/blockSize, inodes, opts)
	}
	return l, l.auto(inodes, opts)
}

// inodeCount is the inode count to ask for: Options.Inodes, or what the
// tree needs plus the headroom share, plus one per 16 KiB of requested
// free space.
func (o *Options) inodeCount(c Content) (uint64, error) {
	if o.Inodes > 0 {
		if o.Inodes < c.peakInodes() {
			return 0, &TooSmallError{Inodes: true, Have: int64(o.Inodes), Need: int64(c.peakInodes())}
		}
		return o.Inodes, nil
	}
	extra := uint64(float64(c.Inodes) * o.Headroom / 100)
	extra = max(extra, uint64(o.Free)/bytesPerFreeInode)
	if o.Size > 0 {
		if have, need := uint64(o.Size), (c.Blocks()+c.peakInodes()/inodesPerBlock)*blockSize; have > need {
			extra = max(extra, (have-need)/bytesPerFreeInode)
		}
	}
	return c.peakInodes() + extra, nil
}

// fixed lays out an image of the given size. It fails only when the
// filesystem's own metadata cannot fit; whether the content fits is for
// mke2fs to find out, since Need is an upper bound.
func (l *Layout) fixed(blocks, inodes uint64, opts Options) error {
	l.Journal = journalFor(blocks, opts)
	g, err := layoutOf(blocks, inodes, true)
	if err == nil && g.lastSmall && g.groups > 1 {
		g, err = layoutOf(blocks-blocks%g.bpg, inodes, true) // as mke2fs does
	}
	if err != nil || g.lastSmall {
		return &TooSmallError{Have: opts.Size, Need: l.estimate(inodes) * blockSize}
	}
	l.set(g)
	l.FileSize = opts.Size
	if g.blocks < l.minBlocks() || l.Overhead+l.Journal+l.Content.Dirs >= g.blocks {
		return &TooSmallError{Have: opts.Size, Need: int64(l.Need) * blockSize}
	}
	return nil
}

// auto finds the smallest image holding the content and the headroom:
// the metadata grows with the size, so it iterates to a fixed point.
func (l *Layout) auto(inodes uint64, opts Options) error {
	c := l.Content
	first := c.Blocks() + ceilDiv(inodes, inodesPerBlock)
	l.Journal = journalFor(first+headroomBlocks(first, opts), opts)
	blocks := first + l.Journal
	for range 64 {
		g, err := grow(blocks, inodes)
		if err != nil {
			return fmt.Errorf("laying out %d blocks and %d inodes: %w", blocks, inodes, err)
		}
		l.set(g)
		want := max(l.Need+headroomBlocks(l.Need, opts), l.minBlocks())
		if want <= g.blocks {
			return nil
		}
		blocks = want
	}
	return fmt.Errorf("sizing did not converge at %d blocks", blocks)
}

func (l *Layout) set(g geometry) {
	l.Blocks = g.blocks
	l.FileSize = int64(g.blocks) * blockSize
	l.BlocksPerGroup = g.bpg
	l.Inodes = g.inodes()
	l.Overhead = g.overhead
	l.Need = l.Content.Blocks() + l.Journal + l.Overhead
}

// minBlocks is the smallest block count mke2fs accepts for the journal:
// at least 2048 blocks, and a journal of at most half the blocks free
// after the metadata, the root directory and lost+found ("Filesystem too
// small for a journal" or "Journal size too big" otherwise).
func (l *Layout) minBlocks() uint64 {
	if l.Journal == 0 {
		return 0
	}
	return max(2048, l.Overhead+1+lostFoundSize+2*l.Journal)
}

// estimate is the rough need in blocks when no geometry can be made.
func (l *Layout) estimate(inodes uint64) int64 {
	return int64(l.Content.Blocks() + l.Journal + ceilDiv(inodes, inodesPerBlock))
}

func headroomBlocks(need uint64, opts Options) uint64 {
	if opts.Free > 0 {
		return ceilDiv(uint64(opts.Free), blockSize)
	}
	return uint64(float64(need)*opts.Headroom/100 + 0.999)
}

// journalFor picks the journal for an image of about blocks blocks: a
// 64th of it, rounded up to a power of two, between 4 MiB (jbd2's
// minimum) and 64 MiB. A root filesystem sees little write traffic; the
// journal is there for crash consistency, not throughput.
func journalFor(blocks uint64, opts Options) uint64 {
	if opts.NoJournal {
		return 0
	}
	j := uint64(minJournal)
	for j < blocks/64 && j < maxJournal {
		j *= 2
	}
	return j
}

// grown returns the layout pct percent bigger, for a retry.
func (l *Layout) grown(pct uint64) (*Layout, error) {
	g, err := grow(l.Blocks+l.Blocks*pct/100, l.Inodes)
	if err != nil {
		return nil, err
	}
	n := *l
	n.set(g)
	return &n, nil
}
