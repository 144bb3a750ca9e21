package fusefs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

func attrImage() *memImage {
	return new(memImage).addLayer(
		dir("etc", perm(0o755)),
		file("etc/shadow", "root:*:1::::::\n", perm(0o600), owner(0, 42), mtime(1600000000, 123456789)),
		dir("root", perm(0o700)),
		file("root/secret", "s3cret", perm(0o400)),
		dir("tmp", perm(0o1777)),
		file("usr/bin/su", "ELF...", perm(0o4755)),
		file("usr/bin/wall", "ELF..", perm(0o2755), owner(0, 5)),
		symlink("usr/bin/sh", "dash"),
		symlink("lib", "usr/lib/with/a/long/target/that/is/longer/than/sixty/characters/for/sure"),
		device("dev/null", overlay.TypeChar, 1, 3, perm(0o666)),
		device("dev/sda", overlay.TypeBlock, 8, 0, perm(0o660), owner(0, 6)),
		device("dev/big", overlay.TypeChar, 4000, 1<<19),
		fifo("run/initctl", perm(0o600)),
		file("home/u/f", "x", owner(1000, 1000), mtime(-86400, 5)),
		file("empty", ""),
	).addLayer(
		hardlink("usr/bin/su2", "usr/bin/su"),
		hardlink("etc/su3", "usr/bin/su"),
	)
}

// TestAttributes compares lstat through the mount with the tree, field by
// field, for every path.
func TestAttributes(t *testing.T) {
	m := attrImage()
	tree := m.merge(t)
	_, mnt := mountTree(t, tree, m, Options{})
	err := tree.Walk(func(p string, n *overlay.Node) error {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, p), &st); err != nil {
			t.Errorf("lstat %q: %v", p, err)
			return nil
		}
		checkStat(t, p, n, &st)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkStat(t *testing.T, p string, n *overlay.Node, st *unix.Stat_t) {
	t.Helper()
	want := mode(n)
	sec, nsec := n.MTimeUnix()
	checks := []struct {
		what      string
		got, want any
	}{
		{"mode", st.Mode, want},
		{"ino", st.Ino, n.StIno()},
		{"nlink", uint32(st.Nlink), n.Nlink()},
		{"uid", st.Uid, n.UID()},
		{"gid", st.Gid, n.GID()},
		{"size", st.Size, int64(size(n))},
		{"blocks", st.Blocks, int64(blocks512(n))},
		{"mtime", [2]int64{st.Mtim.Sec, st.Mtim.Nsec}, [2]int64{sec, int64(nsec)}},
		{"atime", st.Atim, st.Mtim},
		{"ctime", st.Ctim, st.Mtim},
	}
	if t := n.Type(); t == overlay.TypeChar || t == overlay.TypeBlock {
		maj, min := n.Dev()
		checks = append(checks, struct {
			what      string
			got, want any
		}{"rdev", [2]uint32{unix.Major(st.Rdev), unix.Minor(st.Rdev)}, [2]uint32{maj, min}})
	}
	if n.Type() == overlay.TypeSymlink {
		checks = append(checks, struct {
			what      string
			got, want any
		}{"symlink size", st.Size, int64(len(n.Target()))})
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %s = %v, want %v", p, c.what, c.got, c.want)
		}
	}
}

func TestTypesAndSpecialBits(t *testing.T) {
	_, mnt := mountImage(t, attrImage())
	cases := []struct {
		path string
		mode os.FileMode
	}{
		{"root", os.ModeDir | 0o700},
		{"tmp", os.ModeDir | os.ModeSticky | 0o777},
		{"usr/bin/su", os.ModeSetuid | 0o755},
		{"usr/bin/wall", os.ModeSetgid | 0o755},
		{"usr/bin/sh", os.ModeSymlink | 0o777},
		{"dev/null", os.ModeDevice | os.ModeCharDevice | 0o666},
		{"dev/sda", os.ModeDevice | 0o660},
		{"run/initctl", os.ModeNamedPipe | 0o600},
	}
	for _, c := range cases {
		fi, err := os.Lstat(filepath.Join(mnt, c.path))
		if err != nil {
			t.Errorf("lstat %s: %v", c.path, err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	target, err := os.Readlink(filepath.Join(mnt, "lib"))
	if err != nil || target != "usr/lib/with/a/long/target/that/is/longer/than/sixty/characters/for/sure" {
		t.Errorf("readlink lib = %q, %v", target, err)
	}
}

// TestHardlinks checks that every path of a hardlink group has one inode
// and the group's link count: mkfs.ext4 -d relies on both.
func TestHardlinks(t *testing.T) {
	_, mnt := mountImage(t, attrImage())
	var inos []uint64
	for _, p := range []string{"usr/bin/su", "usr/bin/su2", "etc/su3"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mnt, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Nlink != 3 {
			t.Errorf("%s: nlink %d, want 3", p, st.Nlink)
		}
		inos = append(inos, st.Ino)
	}
	if inos[0] != inos[1] || inos[0] != inos[2] {
		t.Errorf("hardlinked paths have inodes %v, want one", inos)
	}
	var d syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, "usr"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Nlink != 3 { // usr, usr/., usr/bin/..
		t.Errorf("usr: nlink %d, want 3", d.Nlink)
	}
}

// TestNoPermissionChecks reads a 0400 file in a 0700 directory owned by
// another user: the mounting user is not held to the image's modes.
func TestNoPermissionChecks(t *testing.T) {
	_, mnt := mountImage(t, new(memImage).addLayer(
		dir("private", perm(0o700), owner(1234, 1234)),
		file("private/secret", "hidden", perm(0o000), owner(1234, 1234)),
	))
	b, err := os.ReadFile(filepath.Join(mnt, "private/secret"))
	if err != nil || string(b) != "hidden" {
		t.Fatalf("reading a mode 000 file: %q, %v", b, err)
	}
}
