package demo

import (
	"encoding/binary"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	ti "github.com/ocifs/ocifs/internal/testimage"
)

// Tag is the tag of the demo image in the OCI layout WriteLayout writes.
const Tag = "demo"

// Linux capability bit numbers used by the demo.
const (
	capNetBindService = 10
	capNetRaw         = 13
)

// Capability returns a security.capability value in VFS_CAP_REVISION_2
// format granting the given capability bits as permitted and effective
// (what `setcap cap_x=ep` writes).
func Capability(bits ...uint) []byte {
	var permitted [2]uint32
	for _, b := range bits {
		permitted[b/32] |= 1 << (b % 32)
	}
	v := make([]byte, 20)
	binary.LittleEndian.PutUint32(v[0:], 0x02000000|0x000001) // revision 2, effective
	binary.LittleEndian.PutUint32(v[4:], permitted[0])
	binary.LittleEndian.PutUint32(v[12:], permitted[1])
	return v
}

// Layers returns the demo's uncompressed tar layers, bottom first.
func Layers() [][]byte {
	return [][]byte{base(), tools(), app(), cleanup()}
}

// Image returns the demo image.
func Image() (v1.Image, error) {
	return ti.Build(Layers(),
		ti.WithCompression(ti.Gzip, ti.Gzip, ti.Zstd, ti.Uncompressed),
		ti.WithConfig(func(c *v1.Config) {
			c.Cmd = []string{"/usr/bin/hello.sh"}
			c.Labels = map[string]string{"org.opencontainers.image.title": "ocifs demo"}
		}))
}

// WriteLayout writes the demo image into the OCI layout at dir under Tag.
func WriteLayout(dir string) (v1.Hash, error) {
	img, err := Image()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := ti.SaveLayout(dir, Tag, img); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

const passwd = `root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/srv/www:/bin/false
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
www-data:x:33:
alice:x:1000:
nogroup:x:65534:
`

func base() []byte {
	return ti.Layer(
		ti.Dir("bin"), ti.Dir("dev"), ti.Dir("etc"), ti.Dir("home"),
		ti.Dir("home/alice", ti.Mode(0o750), ti.Owner(1000, 1000)),
		ti.File("home/alice/notes.txt", "buy milk\n", ti.Mode(0o600), ti.Owner(1000, 1000)),
		ti.Dir("root", ti.Mode(0o700)), ti.Dir("tmp", ti.Mode(0o1777)),
		ti.Dir("usr"), ti.Dir("usr/bin"), ti.Dir("usr/share"), ti.Dir("usr/share/doc"), ti.Dir("usr/share/doc/demo"),
		ti.Dir("var"), ti.Dir("var/cache"), ti.Dir("var/cache/apt"),
		ti.File("etc/passwd", passwd),
		ti.File("etc/group", group),
		ti.File("etc/shadow", "root:*:19000:0:99999:7:::\n", ti.Mode(0o640), ti.Owner(0, 42)),
		ti.File("etc/hostname", "localhost\n"),
		ti.File("etc/os-release", "NAME=\"ocifs demo\"\nID=ocifs-demo\nVERSION_ID=1\n"),
		ti.File("bin/busybox", "#!/bin/sh\n# stand-in for busybox\necho \"busybox: $0 $*\"\n", ti.Mode(0o755)),
		ti.Symlink("bin/sh", "busybox"),
		ti.Hardlink("bin/ls", "bin/busybox"),
		ti.CharDev("dev/null", 1, 3, ti.Mode(0o666)),
		ti.File("usr/share/doc/demo/README", "The ocifs demo image.\n"),
		ti.File("usr/share/doc/demo/changelog", "1: first release\n"),
		ti.File("var/cache/apt/pkgcache.bin", "stale cache\n"),
	)
}

func tools() []byte {
	return ti.Layer(
		ti.Dir("usr"), ti.Dir("usr/bin"),
		ti.File("usr/bin/su", "#!/bin/sh\n# stand-in for su\nexec /bin/sh\n", ti.Mode(0o4755)),
		ti.File("usr/bin/ping", "#!/bin/sh\n# stand-in for ping\necho PING \"$1\"\n", ti.Mode(0o755),
			ti.Xattr("security.capability", Capability(capNetRaw))),
		ti.Hardlink("usr/bin/ls", "bin/busybox"),
	)
}

func app() []byte {
	return ti.Layer(
		ti.Dir("srv"),
		ti.Dir("srv/www", ti.Owner(33, 33)),
		ti.File("srv/www/index.html", "<h1>hello from ocifs</h1>\n", ti.Owner(33, 33)),
		ti.Dir("usr"), ti.Dir("usr/bin"),
		ti.File("usr/bin/hello.sh", "#!/bin/sh\necho \"hello from $(cat /etc/hostname)\"\n", ti.Mode(0o755)),
		ti.File("usr/bin/httpd", "#!/bin/sh\n# binds port 80 without root\n", ti.Mode(0o750), ti.Owner(0, 33),
			ti.Xattr("security.capability", Capability(capNetBindService))),
	)
}

func cleanup() []byte {
	return ti.Layer(
		ti.Dir("etc"),
		ti.File("etc/hostname", "ocifs-demo\n"),
		ti.Dir("usr"), ti.Dir("usr/share"), ti.Dir("usr/share/doc"), ti.Dir("usr/share/doc/demo"),
		ti.Whiteout("usr/share/doc/demo/changelog"),
		ti.Dir("var"), ti.Dir("var/cache"), ti.Dir("var/cache/apt"),
		ti.Opaque("var/cache/apt"),
		ti.File("var/cache/apt/lists.txt", "fresh\n"),
	)
}
