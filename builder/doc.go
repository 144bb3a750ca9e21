// Package builder makes an ext4 image of an image's merged tree: it sizes
// the filesystem from the tree, runs mkfs.ext4 -d over a directory that
// shows the tree (an ocifs mount, or any directory holding the same
// files), and verifies the result.
//
//	res, err := builder.Build(ctx, tree, mountpoint, "rootfs.ext4", builder.Options{
//		Seed:     img.Digest.String(),
//		Headroom: builder.DefaultHeadroom,
//	})
//
// # Sizing
//
// Plan computes, from the tree alone, what mke2fs will use, block for
// block (the package's tests hold it to the real program):
//   - file data: every 4 KiB block of a regular file (only the blocks of
//     a sparse file's data extents), plus extent tree blocks for files
//     over 128 MiB or with many fragments;
//   - directories: entries of 8 bytes plus the name padded to 4, packed
//     into blocks in name order as mkfs.ext4 -d adds them (12 bytes of
//     each block are the checksum tail), or as e2fsck -D rewrites them
//     with a hash index (a root block, leaves 80% full), whichever is
//     more; extent blocks for directories of more than 4 blocks, whose
//     blocks sit between their files' data;
//   - symlinks over 59 bytes take a block; xattrs take one block when
//     they do not fit the 96 bytes a 256-byte inode has for them;
//   - inodes: one per tree node (a hardlink group is one), the 10 that
//     ext4 reserves, lost+found; plus the headroom share, or one per
//     16 KiB of Options.Free;
//   - the filesystem's own metadata for that size and inode count:
//     superblock and group descriptor copies (sparse_super), bitmaps,
//     inode tables; and the journal.
//
// Then it adds the headroom (Options.Headroom percent of that, or
// Options.Free bytes) and iterates, since the metadata grows with the
// size. The result is an upper bound: mkfs.ext4 -d leaves all-zero
// blocks out, which Plan cannot see without reading the files. On the
// tests' shapes (20,000 tiny files, a 200 MiB file, a 300-deep tree,
// 6,000 long symlinks, xattrs in and out of the inode, a 50,000-entry
// directory, a rootfs-like mix) the tests check that the estimate is
// never short and at most 1-3% (by shape) plus 64 blocks over what mke2fs
// uses, and that the inode count is exact. Should it ever be short, Build redoes the run 25% bigger
// (Result.Retries counts it, and a warning is logged) rather than fail;
// with a fixed Options.Size it fails with a TooSmallError instead.
//
// A group counts at most 32768 inodes, so a tree of many small files
// gets smaller block groups (mke2fs -g) instead of a filesystem of
// 128 MiB groups mostly empty. With a journal, mke2fs wants at least
// twice the journal free before copying anything, so tiny images are at
// least about 8 MiB; Options.NoJournal avoids that.
//
// # The mkfs run
//
// Every parameter is given on the command line or in an mke2fs.conf the
// build writes (MKE2FS_CONFIG), so the host's /etc/mke2fs.conf changes
// nothing: 4 KiB blocks, 256-byte inodes, no reserved blocks, the feature
// list in mkfs.go (starting from "none"), errors=remount-ro, half_md4
// directory hashes, inode tables and journal zeroed now rather than by
// the guest kernel (lazy_itable_init=0), the root's owner from the tree
// (root_owner). mkfs.ext4 -d does not copy the root directory's mode or
// times: debugfs sets them afterwards and the build reads the mode back.
// e2fsck -fyD then indexes the directories, which mkfs.ext4 -d leaves
// linear; it exits 0 when it only optimized, and anything else fails the
// build, since it means mkfs's output needed repair. e2fsck -fn must then
// find nothing; its counts become Result's used and total blocks and
// inodes.
//
// # Reproducibility
//
// The same tree and options give the same bytes: the UUID and the
// directory hash seed derive from Options.Seed (the manifest digest)
// unless Options.UUID is set; every timestamp e2fsprogs would take from
// the clock comes from Options.Time, by default the tree's newest mtime,
// through E2FSPROGS_FAKE_TIME (libext2fs 1.47.0), SOURCE_DATE_EPOCH
// (1.47.1 and later) and E2FSCK_TIME; children run with an empty
// environment but PATH, the config paths and LC_ALL=C, which makes
// mke2fs's scandir(alphasort) order names bytewise, as the tree does, so
// inodes and blocks are allocated in the same order on every run.
// Byte-identical output assumes the same e2fsprogs version.
//
// # Output
//
// The image is built in a temporary directory next to the output
// (".NAME.ocifs-build-*", also holding the generated configs), synced and
// renamed onto the output only once e2fsck passed: a failed, cancelled or
// interrupted build leaves nothing at the output path and removes the
// temporary directory. A SIGKILLed build cannot; its directory stays
// unlocked (a build holds an flock on its own) and the next build of the
// same output removes it.
//
// # Hazards
//
//   - The children run in "/", with stdin on /dev/null and no inherited
//     descriptor beyond their output pipes: when src is a FUSE mount served
//     by the calling process, a child holding something on it would keep
//     the mount busy, and one outliving the server would hang.
//   - mkfs.ext4 -d (1.47.0) adds each name to a linear directory by
//     scanning the whole directory, so a directory of n entries costs
//     O(n²): 50,000 entries take minutes. Nothing here can change that.
//   - Cancelling ctx kills the running child (SIGKILL) and removes the
//     temporary files.
//
// # Errors
//
// ErrMissingTool (mkfs.ext4, e2fsck or debugfs missing, or mkfs.ext4
// older than 1.43, without -d), ErrNoSpace (the output's disk is full),
// *TooSmallError (a fixed size or inode count that cannot hold the
// tree), *ContentError (something ext4 cannot store: xattrs larger than
// a block, a /lost+found that is not a directory), *CheckError (e2fsck
// found problems), *ToolError (any other failure of a tool, with its
// stderr). The package never prints; it logs commands and their output
// at debug level to Options.Logger.
package builder
