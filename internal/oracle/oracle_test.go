package oracle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/fswalk"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

func h(s string) string {
	x := sha256.Sum256([]byte(s))
	return hex.EncodeToString(x[:])[:12]
}

func walk(t *testing.T, root string) map[string]fswalk.Record {
	t.Helper()
	recs, err := fswalk.Walk(root, fswalk.WalkOptions{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]fswalk.Record{}
	for _, r := range recs {
		m[r.Path] = r
	}
	return m
}

func listing(m map[string]fswalk.Record) string {
	var out []string
	for _, r := range m {
		out = append(out, r.String())
	}
	return strings.Join(sortStrings(out), "\n")
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}

// TestUmociBehaviour pins down what doc.go says about umoci.
func TestUmociBehaviour(t *testing.T) {
	root := func(mode int64) tar.Header {
		return tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: mode, ModTime: ti.Epoch, Format: tar.FormatPAX}
	}
	cases := []struct {
		name   string
		layers [][]byte
		want   []string // Record.String() of every path
	}{
		{"whiteout after same-layer entry", [][]byte{
			ti.Layer(ti.Dir("a"), ti.File("a/x", "old")),
			ti.Layer(ti.Dir("a"), ti.File("a/x", "new"), ti.Whiteout("a/x")),
		}, []string{". dir 0755 0:0", "a dir 0755 0:0", "a/x file 0644 0:0 size=3 sha256=" + h("new")}},
		{"whiteout before same-layer entry", [][]byte{
			ti.Layer(ti.Dir("a"), ti.File("a/x", "old")),
			ti.Layer(ti.Dir("a"), ti.Whiteout("a/x"), ti.File("a/x", "new")),
		}, []string{". dir 0755 0:0", "a dir 0755 0:0", "a/x file 0644 0:0 size=3 sha256=" + h("new")}},
		{"opaque after new children", [][]byte{
			ti.Layer(ti.Dir("a"), ti.File("a/old", "old")),
			ti.Layer(ti.Dir("a", ti.Mode(0o700)), ti.File("a/new", "new"), ti.Opaque("a")),
		}, []string{". dir 0755 0:0", "a dir 0700 0:0", "a/new file 0644 0:0 size=3 sha256=" + h("new")}},
		{"rewrite breaks a lower hardlink", [][]byte{
			ti.Layer(ti.File("x", "old"), ti.Hardlink("y", "x")),
			ti.Layer(ti.File("x", "new")),
		}, []string{". dir 0755 0:0", "x file 0644 0:0 size=3 sha256=" + h("new"), "y file 0644 0:0 size=3 sha256=" + h("old")}},
		{"absolute hardlink, hardlink to symlink", [][]byte{
			ti.Layer(ti.File("x", "x"), ti.Hardlink("y", "/x"), ti.Symlink("s", "t"), ti.Hardlink("hs", "s")),
		}, []string{". dir 0755 0:0",
			`hs symlink 0777 0:0 -> "t" links=[hs s]`, `s symlink 0777 0:0 -> "t" links=[hs s]`,
			"x file 0644 0:0 size=1 sha256=" + h("x") + " links=[x y]", "y file 0644 0:0 size=1 sha256=" + h("x") + " links=[x y]"}},
		{"implicit parents, root entry", [][]byte{
			ti.Layer(ti.Raw(root(0o700), nil), ti.File("p/q/r", "r", ti.Owner(7, 8))),
		}, []string{". dir 0700 0:0", "p dir 0755 0:0", "p/q dir 0755 0:0", "p/q/r file 0644 7:8 size=1 sha256=" + h("r")}},
		{"modes, owners, devices, xattrs", [][]byte{
			ti.Layer(ti.File("s", "s", ti.Mode(0o6755), ti.Owner(1000, 1000),
				ti.Xattr("security.capability", ti.CapNetBindService()), ti.Xattr("trusted.t", []byte("t")), ti.Xattr("user.u", []byte{0, 1})),
				ti.Dir("d", ti.Mode(0o1777), ti.Owner(33, 33)), ti.CharDev("null", 1, 3, ti.Owner(5, 5)),
				ti.Fifo("fifo", ti.Mode(0o600)), ti.BlockDev("loop", 7, 1)),
		}, []string{". dir 0755 0:0", "d dir 1777 33:33", "fifo fifo 0600 0:0", "loop block 0660 0:0 rdev=7:1", "null char 0666 5:5 rdev=1:3",
			`s file 6755 1000:1000 size=1 sha256=` + h("s") + ` xattrs=map["security.capability":"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" "trusted.t":"t" "user.u":"\x00\x01"]`}},
		{"legacy aufs entries kept (differs from OCI)", [][]byte{
			ti.Layer(ti.File(".wh..wh.plnk/123", "x"), ti.Dir(".wh..wh.aufs")),
		}, []string{". dir 0755 0:0", ".wh..wh.plnk dir 0755 0:0", ".wh..wh.plnk/123 file 0644 0:0 size=1 sha256=" + h("x")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			ti.WriteLayout(t, dir, "x", ti.Image(t, tc.layers))
			got := listing(walk(t, UmociUnpack(t, dir, "x")))
			if want := strings.Join(sortStrings(tc.want), "\n"); got != want {
				t.Fatalf("umoci gave:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestMTimes pins down umoci's mtimes: tar mtimes exact, directories
// restored after later layers add children, implicit parents get "now".
// The root's mtime is not meaningful (1970, or the time of unpacking).
func TestMTimes(t *testing.T) {
	old := ti.Epoch.Add(-1000 * time.Second)
	img := ti.Image(t, [][]byte{
		ti.Layer(ti.Dir("a", ti.MTime(old)), ti.File("a/x", "x"), ti.File("imp/f", "f")),
		ti.Layer(ti.File("a/y", "y")),
	})
	start := time.Now().Add(-time.Second)
	m := walk(t, UmociUnpackImage(t, img))
	if !m["a"].MTime.Equal(old) || !m["a/y"].MTime.Equal(ti.Epoch) {
		t.Errorf("a mtime %v (want %v), a/y %v (want %v)", m["a"].MTime, old, m["a/y"].MTime, ti.Epoch)
	}
	if m["imp"].MTime.Before(start) {
		t.Errorf("implicit parent mtime %v, expected the time of unpacking", m["imp"].MTime)
	}
}

// TestUnpackImageWithZstd unpacks a three-layer image (gzip, zstd, none)
// with whiteouts, an opaque directory and hardlinks across layers.
func TestUnpackImageWithZstd(t *testing.T) {
	img := ti.Image(t, [][]byte{
		ti.Layer(ti.Dir("etc"), ti.File("etc/passwd", "root\n"), ti.Dir("bin"), ti.File("bin/busybox", "bb", ti.Mode(0o755)),
			ti.Dir("var"), ti.Dir("var/cache"), ti.File("var/cache/old", "o"), ti.File("etc/gone", "g")),
		ti.Layer(ti.Dir("bin"), ti.Hardlink("bin/ls", "bin/busybox"), ti.Whiteout("etc/gone"),
			ti.Dir("var/cache"), ti.Opaque("var/cache"), ti.File("var/cache/new", "n")),
		ti.Layer(ti.Dir("usr"), ti.Hardlink("usr/sh", "bin/busybox"), ti.Whiteout("bin/ls")),
	}, ti.WithCompression(ti.Gzip, ti.Zstd, ti.Uncompressed))
	got := listing(walk(t, UmociUnpackImage(t, img)))
	want := strings.Join(sortStrings([]string{
		". dir 0755 0:0", "bin dir 0755 0:0", "etc dir 0755 0:0", "usr dir 0755 0:0", "var dir 0755 0:0", "var/cache dir 0755 0:0",
		"bin/busybox file 0755 0:0 size=2 sha256=" + h("bb") + " links=[bin/busybox usr/sh]",
		"usr/sh file 0755 0:0 size=2 sha256=" + h("bb") + " links=[bin/busybox usr/sh]",
		"etc/passwd file 0644 0:0 size=5 sha256=" + h("root\n"),
		"var/cache/new file 0644 0:0 size=1 sha256=" + h("n"),
	}), "\n")
	if got != want {
		t.Fatalf("umoci gave:\n%s\nwant:\n%s", got, want)
	}
}

// TestUnpackRandom makes sure umoci accepts what testimage.Random makes
// (devices, hardlinks to symlinks, replacements) and leaves no markers.
func TestUnpackRandom(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		img := ti.Image(t, ti.Random(t, seed, 4, 60), ti.WithCompression(ti.Gzip, ti.Zstd, ti.Uncompressed, ti.Gzip))
		m := walk(t, UmociUnpackImage(t, img))
		if len(m) < 60 {
			t.Errorf("seed %d: only %d paths unpacked", seed, len(m))
		}
		for p := range m {
			if strings.Contains(p, ".wh.") {
				t.Errorf("seed %d: whiteout marker %s in rootfs", seed, p)
			}
		}
	}
}
