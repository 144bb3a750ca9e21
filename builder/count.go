package builder

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/ocifs/ocifs/overlay"
)

// ext4 constants for the layout Build asks mke2fs for.
const (
	blockSize      = 4096
	inodeSize      = 256
	extraIsize     = 32 // s_want_extra_isize with extra_isize
	dirTail        = 12 // metadata_csum tail of each directory block
	dirUsable      = blockSize - dirTail
	fastSymlinkMax = 59  // targets this long live in the inode
	extentsInInode = 4   // extent slots in i_block
	extentsPerLeaf = 340 // (4096 - 12 header - 4 tail) / 12
	extentMaxLen   = 32768
	htreeSlackPct  = 20 // e2fsck's indexed_dir_slack_percentage
	dxRootLimit    = 507
	dxNodeLimit    = 510
	// reservedInodes are inodes 1-10, which ext4 keeps for itself (the
	// root, inode 2, is among them); lost+found is inode 11.
	reservedInodes = 10
	lostFound      = "lost+found"
	lostFoundSize  = 4 // blocks mke2fs gives lost+found (16 KiB)
	xattrBodyRoom  = inodeSize - 128 - extraIsize
	xattrBlockRoom = blockSize - 32 - 4 // header, end marker
)

// Content is what a tree needs in an ext4 filesystem, before the
// filesystem's own metadata.
type Content struct {
	Inodes   uint64 // inodes in use after the build, reserved ones included
	Data     uint64 // blocks of regular file data
	Dirs     uint64 // directory blocks, after indexing
	Symlinks uint64 // blocks of symlink targets too long for the inode
	Xattrs   uint64 // external xattr blocks
	Extents  uint64 // extent tree blocks of big or fragmented files and dirs
	Bytes    int64  // logical bytes of regular file content
	// SymlinkLinks counts the extra paths of hardlinked symlinks:
	// mkfs.ext4 -d copies them as separate symlinks (an inode, and a
	// block if long, each) before Build links them together again.
	SymlinkLinks uint64
}

// peakInodes is the inodes in use at the end of mkfs, before the
// symlink copies are turned back into links.
func (c Content) peakInodes() uint64 { return c.Inodes + c.SymlinkLinks }

// Blocks returns the total blocks the content needs.
func (c Content) Blocks() uint64 {
	return c.Data + c.Dirs + c.Symlinks + c.Xattrs + c.Extents
}

// countTree measures what the tree needs, visiting each inode once
// (hardlinked paths share a node).
func countTree(t *overlay.Tree) (Content, error) {
	var c Content
	// The root is one of the reserved inodes.
	c.Inodes = uint64(t.Len()) - 1 + reservedInodes
	root := t.Root()
	if lf := t.Lookup(root, lostFound); lf == nil {
		c.Inodes++ // mke2fs makes it
		c.Dirs += lostFoundSize
	} else if lf.Type() != overlay.TypeDir {
		return c, &ContentError{Path: lostFound, Msg: "is a " + lf.Type().String() + ", but ext4 reserves the name for a directory"}
	}
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		n := t.Node(ino)
		if err := c.add(t, n); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Content) add(t *overlay.Tree, n *overlay.Node) error {
	switch n.Type() {
	case overlay.TypeRegular:
		data := fileBlocks(n)
		c.Data += data
		c.Bytes += n.Size()
		c.Extents += extentTreeBlocks(fileExtents(n, data))
	case overlay.TypeDir:
		b := dirBlocks(t, n)
		c.Dirs += b
		// Directories grow a block at a time between their files' data,
		// so every block may be an extent of its own.
		c.Extents += extentTreeBlocks(b)
	case overlay.TypeSymlink:
		copies := uint64(max(n.Nlink(), 1))
		c.SymlinkLinks += copies - 1
		if len(n.Target()) > fastSymlinkMax {
			c.Symlinks += copies
		}
	}
	x, err := xattrBlocks(n.Xattrs())
	if err != nil {
		return &ContentError{Path: pathOf(t, n), Msg: err.Error()}
	}
	c.Xattrs += x
	return nil
}

// fileBlocks counts the data blocks of a regular file: every block that
// holds any data. mkfs.ext4 -d leaves all-zero blocks out, so this is an
// upper bound.
func fileBlocks(n *overlay.Node) uint64 {
	sp := n.Sparse()
	if sp == nil {
		return ceilDiv(uint64(n.Size()), blockSize)
	}
	var blocks uint64
	last := int64(-1) // last block counted, to not count a shared one twice
	for _, x := range sp {
		if x.Len <= 0 {
			continue
		}
		lo, hi := x.Off/blockSize, (x.Off+x.Len-1)/blockSize
		if lo <= last {
			lo = last + 1
		}
		if hi >= lo {
			blocks += uint64(hi - lo + 1)
			last = hi
		}
	}
	return blocks
}

// fileExtents bounds the extents a file's data takes: one per 32768
// blocks, one per data fragment of a sparse file, and room for a break
// at group metadata (backup superblocks, the journal) per 32768 blocks.
// Holes mkfs punches for zero blocks add extents too, but each saves at
// least a data block, which pays for its share of an extent block.
func fileExtents(n *overlay.Node, blocks uint64) uint64 {
	if blocks == 0 {
		return 0
	}
	runs := ceilDiv(blocks, extentMaxLen)
	if sp := n.Sparse(); len(sp) > 1 {
		runs += uint64(len(sp))
	}
	return 2*runs + 2
}

// extentTreeBlocks counts the blocks of an extent tree with the given
// number of extents: none while they fit in the inode, then leaves of 340
// and index levels above them.
func extentTreeBlocks(extents uint64) uint64 {
	var blocks uint64
	for extents > extentsInInode {
		level := ceilDiv(extents, extentsPerLeaf)
		blocks += level
		extents = level
	}
	return blocks
}

// direntSize is the size of a directory entry: 8 bytes of header and the
// name, padded to 4.
func direntSize(name string) uint64 { return (8 + uint64(len(name)) + 3) &^ 3 }

// dirBlocks counts a directory's blocks: as mkfs.ext4 -d fills it (entries
// packed in name order, "." and ".." first), or as e2fsck -D rewrites it
// with an index (a root block, then leaves filled to 80%), whichever is
// more.
func dirBlocks(t *overlay.Tree, n *overlay.Node) uint64 {
	kids := t.Children(n)
	entries := make([]uint64, 0, len(kids)+1)
	for _, d := range kids {
		entries = append(entries, direntSize(d.Name))
	}
	if n.Ino() == overlay.RootIno && t.Lookup(n, lostFound) == nil {
		entries = append(entries, direntSize(lostFound))
	}
	linear := packDirents(entries)
	if linear < 2 {
		return linear
	}
	var total uint64
	for _, e := range entries {
		total += e
	}
	leafRoom := uint64(dirUsable - dirUsable*htreeSlackPct/100)
	// e2fsck closes a leaf once less than the slack is left in it, so
	// every leaf but the last holds more than leafRoom bytes.
	leaves := ceilDiv(total, leafRoom)
	index := uint64(1)
	if leaves > dxRootLimit {
		index += ceilDiv(leaves, dxNodeLimit)
	}
	return max(linear, index+leaves)
}

// packDirents packs entries into blocks in order, as mkfs.ext4 -d adds
// them (next fit; mkfs's first fit never needs more).
func packDirents(entries []uint64) uint64 {
	blocks, used := uint64(1), uint64(12+12) // "." and ".."
	for _, e := range entries {
		if used+e > dirUsable {
			blocks++
			used = 0
		}
		used += e
	}
	return blocks
}

// xattrBlocks returns how many blocks an inode's xattrs need beyond the
// inode (0 or 1), or an error when they cannot fit at all (ext4 without
// ea_inode keeps all of an inode's xattrs in the inode and one block).
func xattrBlocks(xs []overlay.Xattr) (uint64, error) {
	if len(xs) == 0 {
		return 0, nil
	}
	var names, values uint64
	for _, x := range xs {
		names += 16 + pad4(uint64(len(xattrShortName(x.Name))))
		values += pad4(uint64(len(x.Value)))
	}
	if 4+names+4+values <= xattrBodyRoom {
		return 0, nil
	}
	if names+values > xattrBlockRoom+xattrBodyRoom-8 {
		return 0, fmt.Errorf("extended attributes take %d bytes; ext4 holds at most about %d per inode",
			names+values, xattrBlockRoom+xattrBodyRoom-8)
	}
	return 1, nil
}

// xattrShortName is the name ext4 stores: the well-known prefixes become
// an index byte.
func xattrShortName(name string) string {
	switch name {
	case "system.posix_acl_access", "system.posix_acl_default":
		return ""
	}
	for _, p := range []string{"user.", "trusted.", "security.", "system."} {
		if strings.HasPrefix(name, p) {
			return name[len(p):]
		}
	}
	return name
}

// pathOf finds a path of n, for error messages.
func pathOf(t *overlay.Tree, n *overlay.Node) string {
	var found string
	t.Walk(func(p string, m *overlay.Node) error {
		if m == n {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}

func pad4(n uint64) uint64 { return (n + 3) &^ 3 }

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }
