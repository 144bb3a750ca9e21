package fswalk

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// buildTree makes a small tree with every type Walk distinguishes that an
// ordinary user can create (devices only as root).
func buildTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(s string) string { return filepath.Join(root, s) }
	must(os.MkdirAll(p("etc/ssl"), 0o755))
	must(os.WriteFile(p("etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(os.Mkdir(p("bin"), 0o755))
	must(os.WriteFile(p("bin/busybox"), []byte("ELF"), 0o755))
	must(unix.Chmod(p("bin/busybox"), 0o4755)) // chmod: umask would drop setuid
	must(os.Link(p("bin/busybox"), p("bin/ls")))
	must(os.Link(p("bin/busybox"), p("etc/ls")))
	must(os.Symlink("busybox", p("bin/sh")))
	must(os.Mkdir(p("tmp"), 0o755))
	must(unix.Chmod(p("tmp"), 0o1777))
	must(unix.Mkfifo(p("tmp/fifo"), 0o600))
	must(unix.Lsetxattr(p("etc/passwd"), "user.note", []byte("a\x00b"), 0))
	must(unix.Lsetxattr(p("etc"), "user.dir", []byte("d"), 0))
	if os.Geteuid() == 0 {
		must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Chown(p("etc/passwd"), 1000, 1001))
	}
	return root
}

func byPath(t *testing.T, recs []Record) map[string]Record {
	m := map[string]Record{}
	for _, r := range recs {
		m[r.Path] = r
	}
	return m
}

func TestWalk(t *testing.T) {
	root := buildTree(t)
	recs, err := Walk(root, WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := byPath(t, recs)
	if recs[0].Path != "." || recs[0].Type != Dir {
		t.Fatalf("first record %v, want the root", recs[0])
	}
	bb := m["bin/busybox"]
	wantLinks := []string{"bin/busybox", "bin/ls", "etc/ls"}
	if bb.Type != File || bb.Perm != 0o4755 || bb.Size != 3 || bb.Nlink != 3 || !reflect.DeepEqual(bb.Links, wantLinks) {
		t.Errorf("bin/busybox: %v nlink=%d", bb, bb.Nlink)
	}
	if !reflect.DeepEqual(m["etc/ls"].Links, wantLinks) {
		t.Errorf("etc/ls links %v", m["etc/ls"].Links)
	}
	// sha256("ELF")
	if bb.SHA256 != sha256Hex("ELF") {
		t.Errorf("bin/busybox sha256 %s", bb.SHA256)
	}
	if sh := m["bin/sh"]; sh.Type != Symlink || sh.Target != "busybox" || sh.Links != nil {
		t.Errorf("bin/sh: %v", sh)
	}
	if tmp := m["tmp"]; tmp.Perm != 0o1777 {
		t.Errorf("tmp: %v", tmp)
	}
	if f := m["tmp/fifo"]; f.Type != Fifo || f.Perm != 0o600 {
		t.Errorf("tmp/fifo: %v", f)
	}
	if x := m["etc/passwd"].Xattrs["user.note"]; x != "a\x00b" {
		t.Errorf("etc/passwd user.note = %q", x)
	}
	if x := m["etc"].Xattrs["user.dir"]; x != "d" {
		t.Errorf("etc user.dir = %q", x)
	}
	if os.Geteuid() == 0 {
		if n := m["null"]; n.Type != Char || n.Major != 1 || n.Minor != 3 {
			t.Errorf("null: %v", n)
		}
		if pw := m["etc/passwd"]; pw.UID != 1000 || pw.GID != 1001 {
			t.Errorf("etc/passwd owner %d:%d", pw.UID, pw.GID)
		}
	}
	again, _ := Walk(root, WalkOptions{})
	if d := Diff(recs, again, DiffOptions{}); d != nil {
		t.Errorf("two walks of one tree differ: %v", d)
	}
}

// TestNoContent: a metadata-only walk records everything a full one does
// but the file hashes.
func TestNoContent(t *testing.T) {
	root := buildTree(t)
	full, err := Walk(root, WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := Walk(root, WalkOptions{NoContent: true})
	if err != nil {
		t.Fatal(err)
	}
	if h := byPath(t, meta)["bin/busybox"].SHA256; h != "" {
		t.Errorf("a metadata-only walk hashed bin/busybox: %s", h)
	}
	if d := Diff(full, meta, DiffOptions{Ignore: FContent}); d != nil {
		t.Errorf("a metadata-only walk differs beyond content: %v", d)
	}
}

func TestIgnoreXattrs(t *testing.T) {
	root := buildTree(t)
	recs, err := Walk(root, WalkOptions{IgnoreXattrs: []string{"user.note"}})
	if err != nil {
		t.Fatal(err)
	}
	if x := byPath(t, recs)["etc/passwd"].Xattrs; x != nil {
		t.Fatalf("ignored xattr recorded: %q", x)
	}
}

func TestDiff(t *testing.T) {
	a := buildTree(t)
	b := buildTree(t)
	pb := func(s string) string { return filepath.Join(b, s) }
	// break one link, change content, mode, xattr, add and remove paths
	if err := os.Remove(pb("etc/ls")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb("etc/ls"), []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	unix.Chmod(pb("etc/ls"), 0o4755)
	os.WriteFile(pb("etc/passwd"), []byte("root:x:0:0::/root:/bin/bash\n"), 0o644)
	unix.Chmod(pb("tmp"), 0o777)
	unix.Lsetxattr(pb("etc"), "user.dir", []byte("e"), 0)
	os.Mkdir(pb("lost+found"), 0o700)
	os.WriteFile(pb("lost+found/x"), nil, 0o600)
	os.Remove(pb("bin/sh"))
	os.Symlink("/bin/busybox", pb("bin/sh"))
	os.WriteFile(pb("new"), nil, 0o644)
	os.Remove(filepath.Join(a, "tmp/fifo"))

	ra, err := Walk(a, WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Walk(b, WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := Diff(ra, rb, DiffOptions{IgnorePaths: []string{"lost+found"}, Ignore: FMTime})
	want := []string{
		`bin/busybox: nlink 3 != 2`,
		`bin/busybox: hardlinks [bin/busybox bin/ls etc/ls] != [bin/busybox bin/ls]`,
		`bin/ls: nlink 3 != 2`,
		`bin/ls: hardlinks [bin/busybox bin/ls etc/ls] != [bin/busybox bin/ls]`,
		`bin/sh: size 7 != 12`,
		`bin/sh: target "busybox" != "/bin/busybox"`,
		`etc: xattr user.dir "d" != "e"`,
		`etc/ls: nlink 3 != 1`,
		`etc/ls: hardlinks [bin/busybox bin/ls etc/ls] != []`,
		`etc/passwd: size 26 != 28`,
		`etc/passwd: sha256 ` + sha256Hex("root:x:0:0::/root:/bin/sh\n")[:12] + ` != ` + sha256Hex("root:x:0:0::/root:/bin/bash\n")[:12],
		`new: only in b (file)`,
		`tmp: mode 1777 != 0777`,
		`tmp/fifo: only in b (fifo)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := Diff(ra, rb, DiffOptions{IgnorePaths: []string{"lost+found", "bin", "etc", "tmp", "new"}}); len(d) > 1 {
		t.Fatalf("ignoring paths: %v", d) // only the root's mtime may differ
	}
	if d := Diff(ra, ra, DiffOptions{}); d != nil {
		t.Fatalf("a walk differs from itself: %v", d)
	}
}
