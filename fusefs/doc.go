// Package fusefs serves an immutable overlay.Tree as a read-only FUSE file
// system.
//
//	srv, err := fusefs.Mount(dir, tree, content, fusefs.Options{})
//	...
//	defer srv.Unmount()
//
// Mount returns once the kernel answers requests on dir; the requests are
// served by goroutines of the calling process until Server.Unmount, or
// until the directory is unmounted from outside (Server.Wait returns
// then). Unmount (the function) unmounts a directory from any process,
// also after the server died.
//
// # Design
//
// The tree never changes and numbers its inodes densely from 1, which is
// also the kernel's root node id. So the file system implements go-fuse's
// raw protocol interface directly: the kernel's node id is the tree's
// inode number, there is no per-inode object, Forget has nothing to
// release, LOOKUP is a binary search in a sorted child list and GETATTR an
// array index. No handler takes a lock; the only shared mutable state are
// the request counters (atomics). (A filling mount, MountFilling, is
// another file system in front of this one; see Filling.)
//
// # Attributes
//
// lstat through the mount returns the image's values: type and permission
// bits with setuid, setgid and sticky; numeric uid and gid; size; mtime,
// with atime and ctime equal to it; rdev of devices (the protocol carries
// 12 bits of major and 20 of minor); st_ino and d_ino from
// overlay.Node.StIno, shared by every path of a hardlink group (the
// kernel's node id is Node.Ino, a different number), and true link
// counts (2 + subdirectories for a directory). A symlink's size is its
// target's length (mkfs.ext4 -d silently skips the rest of a directory
// when it is not). A directory's size is 4096, as for a fresh ext4
// directory; st_blocks is the size rounded up to 4 KiB blocks (data
// extents only for sparse files, 0 for symlinks and devices); st_blksize
// is 4096.
//
// # Extended attributes
//
// listxattr and getxattr return the image's attributes, byte for byte,
// except those the kernel would refuse to hand out, which are left out so
// that a reader that lists and then reads every name (mkfs.ext4 -d does,
// and aborts on the first failure) never fails:
//   - trusted.* (readable only with CAP_SYS_ADMIN, so an ordinary user's
//     build would fail; left out for root too, so both builds agree);
//   - user.* on anything but regular files and directories;
//   - names over 255 bytes, values over 64 KiB;
//   - a security.capability value that is not a vfs_cap_data revision 2
//     (20 bytes) or 3 (24 bytes): the kernel answers EINVAL for anything
//     else, revision 1 included. Logged once, as a warning, at Mount
//     (for MountFilling, once the tree is complete);
//   - a malformed system.posix_acl_access or _default value.
//
// The kernel itself rewrites a revision 3 capability whose root uid is 0
// into revision 2 on the way out, as it does on any file system.
// When no node has an attribute to serve, xattr requests answer ENOSYS:
// the kernel then stops sending them and answers EOPNOTSUPP itself, which
// saves one request per file during mkfs.ext4 -d (it treats EOPNOTSUPP as
// "no attributes").
//
// # Access
//
// The image's modes and owners are not checked against the caller: an
// ordinary user's mkfs.ext4 -d must read a 0600 root-owned file and enter
// a 0700 directory. The mount is private to the mounting user (the FUSE
// default: no other user, not even root, can enter it). Options.AllowOther
// opens it to everyone and then has the kernel enforce the image's modes
// (allow_other, default_permissions). The mount is read-only (ro,
// nosuid, nodev): device nodes cannot be opened, setuid bits do not
// elevate. Every request that would change something answers EROFS.
//
// # Kernel caching
//
// Everything the kernel learns stays valid forever, and the mount is set
// up so that it asks as little as possible:
//   - entry, attribute and negative-entry timeouts are effectively
//     infinite, so each path costs one LOOKUP (or none, below) and no
//     GETATTR;
//   - READDIRPLUS returns every child's attributes with the listing, so
//     scandir followed by lstat of each child sends no LOOKUP at all;
//   - OPEN and OPENDIR answer ENOSYS once (FUSE_NO_OPEN_SUPPORT,
//     FUSE_NO_OPENDIR_SUPPORT): the kernel stops sending OPEN, RELEASE,
//     OPENDIR and RELEASEDIR and keeps file pages and directory listings
//     cached across opens (FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR are its
//     no-open defaults); FLUSH and LSEEK answer ENOSYS once too, after
//     which the kernel handles close and SEEK_DATA/SEEK_HOLE by itself
//     (no holes but EOF; mkfs.ext4 -d skips zero blocks on its own);
//   - symlink targets are cached (FUSE_CACHE_SYMLINKS).
//
// Measured with a real mkfs.ext4 -d over a 2,065-path tree
// (TestMkfsRoundTrips): a plain server (1 s timeouts, open/flush/lseek
// answered, no readdirplus) gets 16,258 requests, 6.9 per path besides
// reads; this one gets 2,098: one READ per small file, a few READDIRPLUS
// per directory, and about ten others in all. With extended attributes
// present, LISTXATTR per path and GETXATTR per attribute are added
// (the kernel does not cache them).
//
// # Reads
//
// File bytes come from Node.ReadAt through the content reader
// (overlay.LayerReader), into the buffer go-fuse hands to the handler, and
// go back with no allocation per read: one pread (retried until full) and
// one writev. Reads are never spliced, although the reader may offer its
// layers as plain files (LayerFiler): go-fuse 2.12 fills its pipe with a
// single splice(2) and takes a short count for the end of the file, and
// splice(2) returns short whenever the layer file's next page is not
// cached yet; the kernel then takes the short answer for the file's end
// and shrinks the file (observed as "tar: File shrank" after dropping the
// caches). Copying costs two syscalls against five and measures as fast
// (BenchmarkFileRead, BenchmarkRead). Buffered reads arrive as requests of
// up to 128 KiB, the kernel's readahead size, whatever the mount's
// max_read.
//
// FUSE passthrough (the kernel reading a backing file itself) does not
// fit: it maps a whole open file onto a backing file from offset 0, and a
// file's bytes here sit in the middle of a layer's tar stream; it also
// needs OPEN and RELEASE round trips, two per file where a small file
// costs one READ now.
//
// # Prefetching
//
// With Options.Prefetch, the content of a listed directory's files of up
// to 1 MiB is pushed into the kernel's page cache (FUSE_NOTIFY_STORE) by
// one goroutine, in listing order, as soon as the kernel has parsed the
// READDIRPLUS reply that named them (the next READDIRPLUS call on that
// directory proves it; a store for an inode the kernel does not know yet
// fails). A reader that reads every file it lists then mostly finds
// them cached: for the Debian image of docs/BENCHMARKS.md, mkfs.ext4 -d
// sends about 900 READs instead of 5,600, and the pushing runs on
// another CPU meanwhile. A file that a READ asked for first is not
// pushed again. The cost is page cache for files nobody reads, so
// `ocifs build` uses it and `ocifs mount` only with --prefetch. Stats
// counts what was pushed.
//
// WarmWalk goes one step further for a reader whose order is known: run
// in a child process (never the server's own, see Hazards), it walks the
// mount in mkfs.ext4 -d's order,
// listing every directory and reading every symlink, so that those round
// trips (and, with Prefetch, the pushes they trigger) run on another CPU
// ahead of the reader. With both, mkfs.ext4 -d over the Debian image
// sends about 160 READs and almost no other request itself, and takes
// 1.2 times as long as over an extracted tree (1.04 times when the walk
// and the pushes are done before it starts).
//
// Neither is bounded by the reader's progress, which is invisible to the
// server once it hits the page cache: on an image larger than the free
// memory, pushed pages may be reclaimed before the reader gets to them,
// and it then reads them through READ as without prefetching.
//
// # Filling
//
// MountFilling serves an image whose layers are still arriving, top layer
// first. A Filler reports its states: an overlay.Partial for the layers
// known so far, then the complete Tree, or an error. MountFilling returns
// at once, and until the tree is complete:
//   - LOOKUP answers at once when the known layers decide the path
//     (Partial.Get), and otherwise waits for the next state and tries
//     again; so a missing name waits for the complete tree;
//   - GETATTR, READLINK, OPEN, READ, LISTXATTR and GETXATTR of a file
//     looked up so (anything but a directory) answer at once from its
//     node: all of a decided file's attributes are final, and its content
//     is in a layer already known;
//   - GETATTR of a directory looked up so, and of the root, answers at
//     once too, with link count 1 (the lower layers may add
//     subdirectories) and a timeout of 0, so that stat asks again and
//     gets the true count once the tree is complete; the root's other
//     attributes are overlay.UnknownRoot's until a known layer has the
//     root's entry (Partial.Root);
//   - LISTXATTR and GETXATTR of a directory looked up so answer at once
//     (its xattrs are final), and of the root once a known layer has the
//     root's entry;
//   - OPENDIR, READDIR and READDIRPLUS wait for the complete tree, and
//     so does STATFS: a listing depends on every layer;
//   - entries and a file's attributes are cached forever, as with Mount;
//   - node ids are handed out from 2^48 up, one per path, so the paths of
//     a hardlink get one each (with one st_ino);
//   - a waiting request answers EINTR when its caller is killed (FUSE
//     INTERRUPT), and EIO while the fill has failed; decided files keep
//     working then. A failure may be followed by newer states (the
//     Filler retries), and requests then wait again;
//   - Server.WaitingLookups counts the lookups waiting, so that the
//     Filler can fetch first the layers they need next.
//
// Once the tree is complete, every request goes to a file system built as
// Mount builds it (Options.Prefetch starts then); a request naming a node
// id handed out while filling is translated to the tree's id of its path
// (ESTALE, and an error logged, if the tree lacks it: a Partial bug). The
// kernel may then know a file under both ids, with equal attributes.
// Stats counts both phases. While filling, the handlers share one lock
// (on the ids handed out); once complete, none takes it.
//
// With Options.AllowOther the kernel checks permissions itself
// (default_permissions), with the attributes of the root and of every
// directory on a path, which GETATTR answers at once (above).
//
// # Hazards
//
// A process that serves a FUSE mount and also uses it (or runs a child
// that does) must keep the two apart:
//   - a child such as mkfs.ext4 -d must not start with its working
//     directory on the mount, nor get descriptors of files on it (as
//     stdin, ExtraFiles): the mount cannot be unmounted while they live.
//     Run it from "/" or the output's directory, with the mount point as
//     an argument only;
//   - no child may inherit /dev/fuse itself: a connection whose device is
//     still open in a live process is never aborted, so if the server died
//     the child would wait forever for answers to its own requests. go-fuse
//     opens the device without O_CLOEXEC when mounting directly; Mount
//     marks it close-on-exec before returning, so start children after
//     Mount returns, not concurrently with it;
//   - stop the child before Unmount: while it has files open, Unmount
//     retries for a few seconds and then fails with ErrBusy;
//   - the serving process must never use its own mount, not even a stat:
//     if it is killed while one of its threads waits for a request its
//     server threads already took, the kernel waits for the answer
//     uninterruptibly, the process never finishes dying, the device is
//     never closed, and the mount and everyone using it hang for good. So
//     Mount does not wait for the mount by touching it (NewServer has
//     answered INIT already), and WarmWalk runs in a child process. Tests
//     that read their own mount set Options.SelfAccess, without which the
//     Go runtime's epoll registration of a file on the mount can deadlock
//     the process with its own garbage collector;
//   - if the serving process dies, the mount stays behind: reads fail with
//     ENOTCONN ("transport endpoint is not connected") while names and
//     attributes the kernel cached may still answer; Unmount(dir) removes
//     it, CheckMountpoint reports it (a statfs probe, never cached);
//   - a file named .go-fuse-epoll-hack at the root of an image is hidden:
//     go-fuse answers for that name itself while mounting.
//
// # Privileges
//
// As root, Mount calls mount(2) directly and needs an openable /dev/fuse
// (ErrNoFUSE otherwise). As an ordinary user it runs the setuid
// fusermount3 helper (ErrNoFusermount when it is missing), which opens
// /dev/fuse itself; AllowOther then needs user_allow_other in
// /etc/fuse.conf.
package fusefs
