// Package fswalk records everything a filesystem tree says about itself,
// so two trees can be compared field by field: the FUSE mount against
// `umoci unpack`, an ext4 image read back against the mount, a root build
// against an unprivileged one.
//
// Walk visits every path under a root, the root itself included as ".",
// without following symlinks and without crossing into other mounts'
// semantics (it uses lstat and l*xattr calls only). For each path it
// records type, permission bits including setuid/setgid/sticky, numeric
// uid/gid, size, the sha256 of a regular file's content, a symlink's
// target, a device's major:minor, every extended attribute (trusted.* only
// when asked: reading it needs CAP_SYS_ADMIN), mtime and link count.
// Non-directories that share (dev, inode) form a hardlink group; each
// member's Links holds the group's sorted paths. Records come out sorted
// by path, so a walk is deterministic.
//
// Diff lists every difference between two walks, one readable line each,
// sorted by path. It never reports a directory's size (filesystems differ
// in how they count directory blocks) or a directory's link count (it
// depends on how the filesystem counts subdirectories; FUSE and ext4
// differ). DiffOptions can ignore paths (with their subtrees, e.g.
// "lost+found" of an ext4 image) and fields; mtime is compared to a
// granularity the caller picks (one second by default).
//
// Hazard: hashing reads every regular file in full; walking a FUSE mount
// exercises its read path, which is intended.
package fswalk
