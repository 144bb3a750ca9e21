package demo

// Expect returns the merged filesystem of the demo image as
// fswalk.Record.String() lines, sorted by path, root first, for a walk
// without trusted.* xattrs. It is written out by hand (checked against
// umoci in this package's tests), not computed from the fixtures, so that
// a wrong merge cannot agree with itself.
//
// What to look for: bin/busybox, bin/ls and usr/bin/ls are one inode
// (a hardlink made in the same layer and one made across layers);
// usr/bin/su is setuid root; usr/bin/ping carries cap_net_raw=ep and
// usr/bin/httpd cap_net_bind_service=ep; the changelog is whited out;
// var/cache/apt is opaque (pkgcache.bin is gone, lists.txt is new);
// etc/hostname is the upper layer's.
func Expect() []string {
	return []string{
		". dir 0755 0:0",
		"bin dir 0755 0:0",
		"bin/busybox file 0755 0:0 size=55 sha256=e43c1d3f76b4 links=[bin/busybox bin/ls usr/bin/ls]",
		"bin/ls file 0755 0:0 size=55 sha256=e43c1d3f76b4 links=[bin/busybox bin/ls usr/bin/ls]",
		`bin/sh symlink 0777 0:0 -> "busybox"`,
		"dev dir 0755 0:0",
		"dev/null char 0666 0:0 rdev=1:3",
		"etc dir 0755 0:0",
		"etc/group file 0644 0:0 size=56 sha256=78343bcb4497",
		"etc/hostname file 0644 0:0 size=11 sha256=d495f5132c44",
		"etc/os-release file 0644 0:0 size=45 sha256=253e13198852",
		"etc/passwd file 0644 0:0 size=172 sha256=12c9d102ccb2",
		"etc/shadow file 0640 0:42 size=26 sha256=06de388e010f",
		"home dir 0755 0:0",
		"home/alice dir 0750 1000:1000",
		"home/alice/notes.txt file 0600 1000:1000 size=9 sha256=409baa381eae",
		"root dir 0700 0:0",
		"srv dir 0755 0:0",
		"srv/www dir 0755 33:33",
		"srv/www/index.html file 0644 33:33 size=26 sha256=c6a38c650aa0",
		"tmp dir 1777 0:0",
		"usr dir 0755 0:0",
		"usr/bin dir 0755 0:0",
		"usr/bin/hello.sh file 0755 0:0 size=49 sha256=71fc8ecbb589",
		`usr/bin/httpd file 0750 0:33 size=39 sha256=f16c3120748d xattrs=map["security.capability":"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"]`,
		"usr/bin/ls file 0755 0:0 size=55 sha256=e43c1d3f76b4 links=[bin/busybox bin/ls usr/bin/ls]",
		`usr/bin/ping file 0755 0:0 size=45 sha256=00eecba346df xattrs=map["security.capability":"\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"]`,
		"usr/bin/su file 4755 0:0 size=41 sha256=afebed50ff67",
		"usr/share dir 0755 0:0",
		"usr/share/doc dir 0755 0:0",
		"usr/share/doc/demo dir 0755 0:0",
		"usr/share/doc/demo/README file 0644 0:0 size=22 sha256=9425b29f65d0",
		"var dir 0755 0:0",
		"var/cache dir 0755 0:0",
		"var/cache/apt dir 0755 0:0",
		"var/cache/apt/lists.txt file 0644 0:0 size=6 sha256=02db0d2659c9",
	}
}
