// Package fsload puts a read-only file system under load and checks every
// answer against the tree it should show. Tests of the FUSE server (in
// process, with the race detector watching the handlers) and of the real
// `ocifs mount` binary share it.
//
//	exp := fsload.NewExpect(tree, content) // what the mount must show
//	res := fsload.Run(ctx, fsload.Config{Root: mnt, Readers: 16, Walkers: 1,
//		Duration: 30 * time.Second}, exp)
//	t.Log(res)              // ops and ops/s by kind
//	if err := res.Err(); err != nil { t.Fatal(err) }
//
// # What the readers do
//
// Each reader picks, at random, one of:
//   - lookup: lstat of an existing path; every field (type and permission
//     bits, uid, gid, size, mtime to the nanosecond, inode number, link
//     count, rdev) must be what the tree says, as fusefs/doc.go promises;
//   - miss: lstat of a name that does not exist (a fresh random name, so
//     the kernel's negative cache does not answer it; a name under a
//     missing directory; a name under a file; a 300-byte name): ENOENT,
//     ENOTDIR or ENAMETOOLONG, never anything else;
//   - readlink of a symlink: its target;
//   - xattr: llistxattr and lgetxattr of each name: the tree's attributes,
//     byte for byte (the fixtures must use only attributes the mount
//     serves: see fusefs/doc.go);
//   - read: open a regular file (now and then with O_DIRECT, or after
//     dropping its pages with fadvise, so the read reaches the server),
//     fstat it, pread at a random offset (at the start, in the middle,
//     across EOF, past EOF) a random length, and compare with the tree's
//     content;
//   - readdir of a random directory: the tree's names and types, in
//     order.
//
// Walkers walk the whole tree from the root with readdir and lstat every
// entry, for as long as the readers run.
//
// # Hangs
//
// A dead or deadlocked server makes system calls block. Every worker
// records when its current operation started; Run returns by the
// deadline (Duration plus Config.OpTimeout) even if some are stuck, and
// reports them as errors naming the operation and path. Their goroutines
// stay blocked in the kernel until the mount goes away: a test that saw
// a hang should detach the mount (MNT_DETACH) and fail.
//
// Config.Churn, when set, runs in its own goroutine between pauses for
// the duration: a test uses it to make the kernel forget what it cached
// (FUSE notify invalidations), so that requests keep reaching the server.
//
// The package does not import "testing".
package fsload
