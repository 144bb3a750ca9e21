// Package oracle runs tools that nobody on this project wrote on the same
// images ocifs serves, so tests can diff ocifs's view against theirs.
//
// UmociUnpack runs `umoci unpack --image DIR:TAG BUNDLE` as root and
// returns BUNDLE/rootfs; walk it with internal/fswalk and compare with
// fswalk.Diff. UmociUnpackImage does the same for an in-memory image,
// writing a layout umoci can read first (see zstd below).
//
// How umoci (Debian's 0.4.7, the one installed here) behaves, checked by
// this package's tests (TestUmociBehaviour), so every differential test
// knows what it compares against:
//
//   - zstd layers are refused ("blob is not correct mediatype"): umoci
//     0.4.7 predates them. UmociUnpackImage recompresses zstd layers as
//     gzip (same diffIDs, so the same filesystem); UmociUnpack on a layout
//     with zstd layers fails.
//   - Whiteouts and opaque markers follow the OCI rules and never appear
//     in the rootfs: a whiteout hides only lower layers (a same-named
//     entry of the same layer survives, before or after the marker), an
//     opaque marker hides only lower children wherever it sits in the tar.
//   - A rewritten file gets a new inode: a hardlink made to it in a lower
//     layer keeps the old content (the OCI rule).
//   - Hardlinks: absolute link names are root-relative; hardlinks to
//     symlinks are made (both paths share one symlink inode).
//   - Missing parent directories are created 0755 root:root with the
//     current time as mtime. The root directory's mtime is not meaningful
//     (1970, or the time of unpacking) unless a layer has a "./" entry,
//     which also sets the root's mode. Compare mtimes with care, or not at
//     all (fswalk.DefaultDiff ignores them).
//   - Directory mtimes are restored after their children are written, also
//     across layers. Whole-second tar mtimes come back exact.
//   - Xattrs: security.capability (binary, v2) and user.* are applied;
//     trusted.* too (umoci runs as root here), so walk with
//     fswalk.WalkOptions{Trusted: true} to see them.
//   - Setuid/setgid/sticky bits survive chown; device numbers and fifos
//     are made for real (which is why this needs root).
//   - DIFFERS FROM THE OCI RULES: legacy aufs entries are not skipped.
//     ".wh..wh.plnk/N" is unpacked as a real directory with its files,
//     while a ".wh..wh.aufs" entry is treated as the whiteout of a path
//     named ".wh.aufs". Keep such entries out of differential tests.
//
// Everything here needs root and the umoci binary; without them tests are
// skipped, or fail under OCIFS_TEST_STRICT=1 (internal/testenv).
package oracle
