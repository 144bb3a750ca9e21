package overlay

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
	"testing/fstest"
)

func TestFS(t *testing.T) {
	s := stack{
		tarOf(dir("etc"), file("etc/passwd", "root:x:0:0\n"), dir("usr/lib"), file("usr/lib/libc.so", "ELF"),
			symlink("lib", "usr/lib"), file("big", string(make([]byte, 100000)))),
		tarOf(whiteout("big"), file("etc/hosts", "127.0.0.1 localhost\n"), hardlink("etc/pw2", "etc/passwd"),
			symlink("abs", "/etc/hosts"), symlink("up", "../../../etc"), device("null", TypeChar, 1, 3)),
	}
	tr := mustMerge(t, s)
	fsys := tr.FS(s)
	if err := fstest.TestFS(fsys, "etc/passwd", "etc/hosts", "etc/pw2", "usr/lib/libc.so", "lib", "abs", "null"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"lib/libc.so": "ELF",
		"abs":         "127.0.0.1 localhost\n",
		"up/passwd":   "root:x:0:0\n",
		"etc/pw2":     "root:x:0:0\n",
	} {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if target, err := fs.ReadLink(fsys, "lib"); err != nil || target != "usr/lib" {
		t.Errorf("ReadLink(lib) = %q, %v", target, err)
	}
	if fi, err := fs.Lstat(fsys, "lib"); err != nil || fi.Mode().Type() != fs.ModeSymlink || fi.Size() != 7 {
		t.Errorf("Lstat(lib) = %v, %v; want a symlink of size 7", fi, err)
	}
	if _, err := fs.Stat(fsys, "big"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(big) = %v; want ErrNotExist (whited out)", err)
	}
	if _, err := fs.Stat(fsys, "etc/passwd/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Stat(etc/passwd/x) = %v; want ENOTDIR", err)
	}
}

func TestFSSymlinkLoop(t *testing.T) {
	s := stack{tarOf(symlink("a", "b"), symlink("b", "a"))}
	_, err := fs.Stat(mustMerge(t, s).FS(s), "a")
	if !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Stat(a) = %v; want ELOOP", err)
	}
}
