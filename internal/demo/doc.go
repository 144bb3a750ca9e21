// Package demo is the default demo image of ocifs, generated in code: no
// network, no checked-in blobs, the same digest on every run (for one
// architecture: the config names the host's, so that pulling it picks it).
//
// Four layers, one per compression the cache must handle:
//
//	0 base     gzip  a tiny /etc, busybox stand-in with bin/sh symlink and a
//	                 bin/ls hardlink, /dev/null (char 1:3), /tmp 1777,
//	                 alice's home (uid 1000, 0750/0600), package docs and
//	                 an apt cache
//	1 tools    gzip  setuid-root usr/bin/su (04755), usr/bin/ping with the
//	                 file capability cap_net_raw=ep (security.capability,
//	                 VFS_CAP_REVISION_2), usr/bin/ls hardlinked across layers
//	                 to bin/busybox
//	2 app      zstd  /srv/www owned by www-data (33:33), a shell script
//	3 cleanup  none  a whiteout (usr/share/doc/demo/changelog), an opaque
//	                 var/cache/apt with a new file, a rewritten /etc/hostname
//
// What the merged filesystem must show is listed by Expect, which tests
// (here against umoci, elsewhere against the mount and the ext4 image)
// check.
package demo
