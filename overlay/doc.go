// Package overlay merges the layers of an OCI image into one immutable tree.
//
// # Layers
//
// A Layer is the index of one layer's tar stream: its entries in stream
// order, with names as stored and, for each file, where its content sits in
// the layer's uncompressed tar stream. The cache produces layers; overlay
// never reads a tar itself, and depends on the standard library only.
//
// # Merge rules
//
// Merge applies layers base first. Within a layer, whiteout markers act on
// the lower layers only and are applied before the layer's own entries,
// wherever they sit in the tar:
//
//   - ".wh.NAME" hides NAME (and its subtree) of the lower layers; an entry
//     NAME in the same layer survives.
//   - ".wh..wh..opq" in a directory hides every lower-layer child of that
//     directory; the directory itself stays.
//   - Markers never appear in the merged view. A bare ".wh." is an error.
//     aufs bookkeeping (".wh..wh.plnk", ".wh..wh.aufs" and what is below
//     them) is skipped.
//
// The layer's other entries are then applied in tar order:
//
//   - A directory over a directory merges: the upper attributes win and the
//     children are the union. Any other replacement removes the lower node
//     with its whole subtree, so a directory deleted and recreated later
//     starts empty.
//   - Duplicate entries: the last one wins.
//   - Paths resolve as extraction into a real directory resolves them
//     (umoci, containerd): a symlink among an entry's (or a marker's, or a
//     hardlink target's) parent directories is followed inside the tree, an
//     absolute target starting at the root and ".." stopping there; the last
//     component is never followed. Missing parent directories are created
//     0755 and root-owned where the resolution puts them. A parent that is a
//     file, and symlink loops, are errors.
//   - Names are cleaned ("./", "//", "." and inner ".." resolved lexically);
//     a name whose ".." climbs above the root is an error. A "." entry sets
//     the root's attributes; the root must be a directory.
//   - A hardlink names a path of the tree as it stands at that point of the
//     tar (absolute names are root-relative), which may come from a lower
//     layer, or a file the same layer's whiteouts just hid. The link shares
//     that inode for good: replacing or whiting out the target later leaves
//     the link with the content it had. Links to symlinks and devices work;
//     links to directories, to missing paths and to later entries are
//     errors.
//
// Every error is an *EntryError naming the layer and the entry. Nothing
// that uses a Tree can fail on its shape: all checks happen in Merge.
//
// # Limits
//
// Merge works in time and memory linear in its input, with one exception
// that it bounds itself: resolving a path through symlinks copies and
// walks each target, so a layer of long symlink chains could make every
// entry cost megabytes of work. The bytes that symlink expansion builds in
// one Merge (or History) are capped at 256 MiB (real images use a few
// dozen per entry below a symlinked directory); past that Merge fails
// with an EntryError. Everything else (entry counts, name lengths, xattr
// sizes, index memory) is the producer's to bound: the cache's scanner
// rejects layers over its limits before they reach Merge. Walk and the
// fs.FS view build full paths, so their cost grows with depth times
// entries: with names capped at 4 KiB that stays small.
//
// # The tree
//
// A Tree is immutable once Merge returns; readers need no locks. Inode
// numbers are dense (RootIno to Len()) and depend only on the layers'
// content: directories are numbered breadth first, children in byte order
// of their names. All paths of a hardlink group share one inode, whose
// Nlink is the number of paths; a directory's Nlink is 2 plus its
// subdirectories. Each node records the layer and offset its content comes
// from; Node.ReadAt reads it through a LayerReader, with sparse files'
// holes as zeros. The number users see as st_ino is another one,
// Node.StIno: numbered by layer entry, top layer first, so that the top
// layers fix it for what they hold.
//
// MergePartial merges the top layers of an image alone and decides which
// paths no content of the layers below could change (Partial): what a
// mount serves while the lower layers still download.
//
// History replays the same rules to report what each layer did to one
// path; Raw shows one layer alone, markers included; Tree.FS is an io/fs
// view for tests and tools.
package overlay
