package integration

import (
	"fmt"
	"strings"
	"testing"

	ti "github.com/ocifs/ocifs/internal/testimage"

	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/internal/oracle"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// rulesLayers is a layer stack that exercises every merge rule with one
// meaning under the OCI rules and under umoci's in-order extraction:
// whiteouts (also of directories, and with a same-layer re-creation),
// opaque directories, directory attribute merges, file↔directory and
// symlink↔directory replacements, hardlinks across layers (also to a
// symlink, and one that keeps old content after its target is rewritten),
// devices, a fifo, setuid/setgid/sticky bits, owners, xattrs
// (security.capability and user.*), missing parents and a parent reached
// through a symlink. Integration tests of mount and build reuse it.
func rulesLayers() [][]byte {
	capNet := ti.CapNetBindService()
	return [][]byte{
		ti.Layer(
			ti.Dir("./", ti.Mode(0o755)),
			ti.Dir("bin"), ti.Dir("etc"), ti.Dir("usr/lib", ti.Mode(0o755)), ti.Dir("var/cache/apt", ti.Mode(0o755)),
			ti.File("bin/busybox", "#!busybox\n", ti.Mode(0o755)),
			ti.Hardlink("bin/ls", "bin/busybox"),
			ti.File("bin/su", "su binary\n", ti.Mode(0o4755)),
			ti.File("bin/wall", "wall\n", ti.Mode(0o2755), ti.Owner(0, 5)),
			ti.File("bin/ping", "ping\n", ti.Mode(0o755), ti.Xattr("security.capability", capNet)),
			ti.Dir("tmp", ti.Mode(0o1777)),
			ti.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
			ti.File("etc/shadow", "root:*:19000::::::\n", ti.Mode(0o640), ti.Owner(0, 42)),
			ti.File("etc/motd", "old motd\n"),
			ti.Hardlink("etc/motd.link", "etc/motd"),
			ti.Dir("home/alice", ti.Mode(0o700), ti.Owner(1000, 1000)),
			ti.File("home/alice/notes", "secret\n", ti.Mode(0o600), ti.Owner(1000, 1000), ti.Xattr("user.tag", []byte("blue"))),
			ti.File("var/cache/apt/pkgcache.bin", strings.Repeat("cache", 20000)),
			ti.File("var/cache/apt/srcpkgcache.bin", "src"),
			ti.Dir("opt/tool"), ti.File("opt/tool/a", "a"), ti.File("opt/tool/b", "b"),
			ti.Symlink("lib", "usr/lib"),
			ti.File("usr/lib/libc.so.6", "libc\n", ti.Mode(0o755)),
			ti.Symlink("usr/lib/libc.so", "libc.so.6"),
			ti.CharDev("dev/null", 1, 3), ti.CharDev("dev/tty", 5, 0, ti.Owner(0, 5)),
			ti.BlockDev("dev/sda", 8, 0, ti.Owner(0, 6)),
			ti.Fifo("run/initctl", ti.Mode(0o600)),
			ti.File("data", "a file that becomes a directory"),
			ti.Dir("conf.d"), ti.File("conf.d/x.conf", "x"),
		),
		ti.Layer(
			ti.Whiteout("etc/motd"),
			ti.File("etc/motd", "new motd\n"), // rewritten: motd.link keeps "old motd"
			ti.Whiteout("var/cache/apt"),
			ti.Dir("opt/tool", ti.Mode(0o750), ti.Owner(2, 2)),
			ti.Opaque("opt/tool"),
			ti.File("opt/tool/c", "c"),
			ti.Hardlink("bin/cat", "bin/busybox"),                  // target in a lower layer
			ti.Hardlink("usr/lib/libc.so.link", "usr/lib/libc.so"), // a hardlink to a symlink
			ti.File("lib/libm.so.6", "libm\n"),                     // through the symlink lib -> usr/lib
			ti.Dir("data"), ti.File("data/inside", "now a directory"),
			ti.Symlink("conf.d", "/etc"), // a directory replaced by a symlink
			ti.File("new/deep/path/file", "parents made on the way"),
		),
		ti.Layer(
			ti.Dir("etc", ti.Mode(0o755), ti.Owner(0, 0)),
			ti.File("etc/hostname", "ocifs\n"),
			ti.Whiteout("bin/busybox"),              // ls and cat keep the content
			ti.Dir("var/cache/apt", ti.Mode(0o700)), // recreated empty
			ti.File("bin/su", "su v2\n", ti.Mode(0o4755)),
		),
	}
}

// TestMergeMatchesUmoci compares the merged tree of images from the real
// registry, entry by entry, with what umoci unpacks from the same images.
func TestMergeMatchesUmoci(t *testing.T) {
	reg := testregistry.Start(t)
	cases := map[string][][]byte{"rules": rulesLayers()}
	for seed := uint64(1); seed <= 4; seed++ {
		cases[fmt.Sprintf("random-%d", seed)] = ti.Random(t, seed, 4, 80)
	}
	for name, layers := range cases {
		t.Run(name, func(t *testing.T) {
			comps := []ti.Compression{ti.Gzip, ti.Zstd, ti.Uncompressed, ti.Gzip}[:len(layers)]
			img := ti.Image(t, layers, ti.WithCompression(comps...))
			ref := reg.Repo(name) + ":v1"
			ti.Push(t, img, ref)
			tree, cimg := mergedTree(t, ref) // pulls into this test's cache
			got := treeRecords(t, tree, cimg)
			want, err := fswalk.Walk(oracle.UmociUnpackImage(t, img), fswalk.WalkOptions{Trusted: true})
			if err != nil {
				t.Fatal(err)
			}
			if d := fswalk.Diff(got, want, fswalk.DefaultDiff); len(d) > 0 {
				t.Errorf("merged tree (a) differs from umoci (b) in %d ways:\n%s", len(d), strings.Join(d, "\n"))
			}
			if len(got) < 20 {
				t.Errorf("only %d paths merged; the fixture is broken", len(got))
			}
		})
	}
}
