package overlay

import (
	"errors"
	"strings"
	"testing"
)

func TestMergeRules(t *testing.T) {
	tests := []struct {
		name   string
		layers stack
		want   []string
	}{
		{
			name: "single layer keeps metadata exactly",
			layers: stack{tarOf(
				dir("bin"),
				file("bin/su", "su", mode(04755), owner(0, 0)),
				file("bin/wall", "wall", mode(02755), owner(0, 5)),
				dir("tmp", mode(01777)),
				file("home/u/f", "f", mode(0600), owner(1000, 1000)),
				symlink("bin/sh", "dash"),
				device("dev/null", TypeChar, 1, 3, mode(0666)),
				device("dev/sda", TypeBlock, 8, 0, mode(0660), owner(0, 6)),
				fifo("run/fifo"),
				file("bin/ping", "p", xattr("security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00")),
			)},
			want: []string{
				"bin dir 0755 0:0",
				"bin/ping file 0644 0:0 \"p\" security.capability=\"\\x01\\x00\\x00\\x02\\x00 \\x00\\x00\"",
				"bin/sh symlink 0777 0:0 -> dash",
				"bin/su file 4755 0:0 \"su\"",
				"bin/wall file 2755 0:5 \"wall\"",
				"dev dir 0755 0:0",
				"dev/null char 0666 0:0 1:3",
				"dev/sda block 0660 0:6 8:0",
				"home dir 0755 0:0",
				"home/u dir 0755 0:0",
				"home/u/f file 0600 1000:1000 \"f\"",
				"run dir 0755 0:0",
				"run/fifo fifo 0644 0:0",
				"tmp dir 1777 0:0",
			},
		},
		{
			name: "whiteout hides a lower file",
			layers: stack{
				tarOf(file("a", "1"), file("b", "2")),
				tarOf(whiteout("a")),
			},
			want: []string{`b file 0644 0:0 "2"`},
		},
		{
			name: "whiteout spares the same layer's entry, marker after it",
			layers: stack{
				tarOf(file("a", "old")),
				tarOf(file("a", "new"), whiteout("a")),
			},
			want: []string{`a file 0644 0:0 "new"`},
		},
		{
			name: "whiteout spares the same layer's entry, marker before it",
			layers: stack{
				tarOf(file("a", "old")),
				tarOf(whiteout("a"), file("a", "new")),
			},
			want: []string{`a file 0644 0:0 "new"`},
		},
		{
			name: "whiteout of a directory removes its subtree",
			layers: stack{
				tarOf(dir("d"), file("d/x", "x"), dir("d/e"), file("d/e/y", "y")),
				tarOf(whiteout("d")),
			},
			want: nil,
		},
		{
			name: "whiteout of something absent is harmless",
			layers: stack{
				tarOf(file("a", "1")),
				tarOf(whiteout("nothing"), whiteout("no/such/dir")),
			},
			want: []string{`a file 0644 0:0 "1"`},
		},
		{
			name: "opaque dir hides lower children, keeps its own, wherever the marker sits",
			layers: stack{
				tarOf(dir("d", mode(0700)), file("d/old", "o"), dir("d/sub"), file("d/sub/z", "z")),
				tarOf(dir("d", mode(0750)), file("d/new", "n"), opaque("d"), file("d/late", "l")),
			},
			want: []string{
				"d dir 0750 0:0",
				`d/late file 0644 0:0 "l"`,
				`d/new file 0644 0:0 "n"`,
			},
		},
		{
			name: "opaque dir without its own entry keeps lower attributes",
			layers: stack{
				tarOf(dir("d", mode(0700), owner(3, 3)), file("d/old", "o")),
				tarOf(opaque("d")),
			},
			want: []string{"d dir 0700 3:3"},
		},
		{
			name: "opaque root",
			layers: stack{
				tarOf(file("a", "1"), dir("d")),
				tarOf(opaque(""), file("b", "2")),
			},
			want: []string{`b file 0644 0:0 "2"`},
		},
		{
			name: "legacy aufs bookkeeping is skipped",
			layers: stack{tarOf(
				file("a", "1"),
				dir(".wh..wh.plnk"),
				file(".wh..wh.plnk/1234.5678", "x"),
				file(".wh..wh.aufs", ""),
			)},
			want: []string{`a file 0644 0:0 "1"`},
		},
		{
			name: "directory over directory merges: upper attributes, children union",
			layers: stack{
				tarOf(dir("d", mode(0700), owner(1, 1)), file("d/a", "a")),
				tarOf(dir("d", mode(0755), owner(2, 2)), file("d/b", "b")),
			},
			want: []string{
				"d dir 0755 2:2",
				`d/a file 0644 0:0 "a"`,
				`d/b file 0644 0:0 "b"`,
			},
		},
		{
			name: "file replaces directory and its subtree",
			layers: stack{
				tarOf(dir("d"), file("d/a", "a")),
				tarOf(file("d", "now a file")),
			},
			want: []string{`d file 0644 0:0 "now a file"`},
		},
		{
			name: "directory replaces file",
			layers: stack{
				tarOf(file("d", "file")),
				tarOf(dir("d"), file("d/a", "a")),
			},
			want: []string{"d dir 0755 0:0", `d/a file 0644 0:0 "a"`},
		},
		{
			name: "symlink replaces directory; directory recreated later starts empty",
			layers: stack{
				tarOf(dir("d"), file("d/a", "a")),
				tarOf(symlink("d", "elsewhere")),
				tarOf(dir("d"), file("d/b", "b")),
			},
			want: []string{"d dir 0755 0:0", `d/b file 0644 0:0 "b"`},
		},
		{
			name: "directory whited out and recreated in one layer starts empty",
			layers: stack{
				tarOf(dir("d"), file("d/a", "a")),
				tarOf(whiteout("d"), dir("d", mode(0711))),
			},
			want: []string{"d dir 0711 0:0"},
		},
		{
			name:   "missing parents are created 0755 root-owned",
			layers: stack{tarOf(file("a/b/c", "c", owner(5, 5)))},
			want: []string{
				"a dir 0755 0:0",
				"a/b dir 0755 0:0",
				`a/b/c file 0644 5:5 "c"`,
			},
		},
		{
			name: "a parent symlink is followed, as extraction into a directory does",
			layers: stack{
				tarOf(dir("usr/lib"), file("usr/lib/a", "a"), symlink("lib", "usr/lib"), symlink("abs", "/usr/lib")),
				tarOf(file("lib/b", "b"), file("abs/c", "c")),
			},
			want: []string{
				"abs symlink 0777 0:0 -> /usr/lib",
				"lib symlink 0777 0:0 -> usr/lib",
				"usr dir 0755 0:0",
				"usr/lib dir 0755 0:0",
				`usr/lib/a file 0644 0:0 "a"`,
				`usr/lib/b file 0644 0:0 "b"`,
				`usr/lib/c file 0644 0:0 "c"`,
			},
		},
		{
			name: "a dangling parent symlink creates its target, confined to the root",
			layers: stack{
				tarOf(symlink("lib64", "../../../usr/lib64"), symlink("etc/alt", "x/y")),
				tarOf(file("lib64/ld.so", "ld"), file("etc/alt/z", "z")),
			},
			want: []string{
				"etc dir 0755 0:0",
				"etc/alt symlink 0777 0:0 -> x/y",
				"etc/x dir 0755 0:0",
				"etc/x/y dir 0755 0:0",
				`etc/x/y/z file 0644 0:0 "z"`,
				"lib64 symlink 0777 0:0 -> ../../../usr/lib64",
				"usr dir 0755 0:0",
				"usr/lib64 dir 0755 0:0",
				`usr/lib64/ld.so file 0644 0:0 "ld"`,
			},
		},
		{
			name: "whiteouts and opaque markers resolve parent symlinks too",
			layers: stack{
				tarOf(dir("real/d"), file("real/d/x", "x"), file("real/y", "y"), symlink("link", "real")),
				tarOf(whiteout("link/y"), opaque("link/d")),
			},
			want: []string{
				"link symlink 0777 0:0 -> real",
				"real dir 0755 0:0",
				"real/d dir 0755 0:0",
			},
		},
		{
			name: "a directory entry replaces a symlink in its place",
			layers: stack{
				tarOf(dir("usr/lib"), file("usr/lib/a", "a"), symlink("lib", "usr/lib")),
				tarOf(dir("lib"), file("lib/b", "b")),
			},
			want: []string{
				"lib dir 0755 0:0",
				`lib/b file 0644 0:0 "b"`,
				"usr dir 0755 0:0",
				"usr/lib dir 0755 0:0",
				`usr/lib/a file 0644 0:0 "a"`,
			},
		},
		{
			name: "duplicate entries: last wins",
			layers: stack{tarOf(
				file("a", "first", mode(0600)),
				file("a", "second", mode(0640)),
				dir("d", mode(0700)),
				dir("d", mode(0711)),
			)},
			want: []string{`a file 0640 0:0 "second"`, "d dir 0711 0:0"},
		},
		{
			name: "names are cleaned",
			layers: stack{tarOf(
				dir("./etc/"),
				file("./etc/passwd", "p"),
				file("/etc//group", "g"),
				file("etc/./x/../hosts", "h"),
			)},
			want: []string{
				"etc dir 0755 0:0",
				`etc/group file 0644 0:0 "g"`,
				`etc/hosts file 0644 0:0 "h"`,
				`etc/passwd file 0644 0:0 "p"`,
			},
		},
		{
			name: "hardlink within a layer shares content and counts links",
			layers: stack{tarOf(
				file("bin/busybox", "bb", mode(0755)),
				hardlink("bin/ls", "bin/busybox"),
				hardlink("bin/cat", "/bin/busybox"),
				hardlink("bin/cp", "./bin/ls"),
			)},
			want: []string{
				"bin dir 0755 0:0",
				`bin/busybox file 0755 0:0 "bb" nlink=4`,
				`bin/cat file 0755 0:0 "bb" nlink=4`,
				`bin/cp file 0755 0:0 "bb" nlink=4`,
				`bin/ls file 0755 0:0 "bb" nlink=4`,
			},
		},
		{
			name: "hardlink to a lower layer's file",
			layers: stack{
				tarOf(file("a", "lower", mode(0700), owner(7, 7))),
				tarOf(hardlink("b", "a")),
			},
			want: []string{
				`a file 0700 7:7 "lower" nlink=2`,
				`b file 0700 7:7 "lower" nlink=2`,
			},
		},
		{
			name: "hardlink keeps old content when the target is replaced later",
			layers: stack{
				tarOf(file("a", "old")),
				tarOf(hardlink("b", "a")),
				tarOf(file("a", "new")),
			},
			want: []string{`a file 0644 0:0 "new"`, `b file 0644 0:0 "old"`},
		},
		{
			name: "hardlink keeps content when the target is whited out later",
			layers: stack{
				tarOf(file("a", "old"), hardlink("b", "a")),
				tarOf(whiteout("a")),
			},
			want: []string{`b file 0644 0:0 "old"`},
		},
		{
			name: "hardlink to a file the same layer whites out",
			layers: stack{
				tarOf(dir("d"), file("d/a", "old")),
				tarOf(whiteout("d"), hardlink("keep", "d/a")),
			},
			want: []string{`keep file 0644 0:0 "old"`},
		},
		{
			name:   "hardlink to a symlink",
			layers: stack{tarOf(symlink("s", "target"), hardlink("t", "s"))},
			want:   []string{"s symlink 0777 0:0 -> target nlink=2", "t symlink 0777 0:0 -> target nlink=2"},
		},
		{
			name:   "hardlink to a device",
			layers: stack{tarOf(device("dev/a", TypeChar, 4, 1), hardlink("dev/b", "dev/a"))},
			want:   []string{"dev dir 0755 0:0", "dev/a char 0600 0:0 4:1", "dev/b char 0600 0:0 4:1"},
		},
		{
			name:   "a bare dot sets the root's attributes",
			layers: stack{tarOf(dir(".", mode(0700), owner(1, 2)), file("a", "1"))},
			want:   []string{`a file 0644 0:0 "1"`},
		},
		{
			name: "whiteout markers never show",
			layers: stack{
				tarOf(dir("d"), file("d/x", "x")),
				tarOf(whiteout("d/x"), whiteout("d/none"), opaque("e")),
			},
			want: []string{"d dir 0755 0:0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustMerge(t, tc.layers)
			got := dump(t, tr, tc.layers)
			if d := diffLines(got, tc.want); d != "" {
				t.Errorf("merged tree differs:\n%s", d)
			}
			checkInvariants(t, tr)
		})
	}
}

func TestMergeRootAttributes(t *testing.T) {
	tr := mustMerge(t, stack{
		tarOf(file("a", "1")),
		tarOf(dir("./", mode(0700), owner(1, 2), mtime(99))),
	})
	r := tr.Root()
	if r.Mode() != 0700 || r.UID() != 1 || r.GID() != 2 || r.MTime().Unix() != 99 || r.Layer() != 1 {
		t.Errorf("root = mode %o uid %d gid %d mtime %d layer %d; want 0700 1 2 99 1",
			r.Mode(), r.UID(), r.GID(), r.MTime().Unix(), r.Layer())
	}
	if tr.Get("a") == nil {
		t.Error("the root's entry must not drop its children")
	}
	def := mustMerge(t, stack{tarOf(file("a", "1"))}).Root()
	if def.Mode() != 0755 || def.UID() != 0 || def.Layer() != -1 {
		t.Errorf("implicit root = mode %o uid %d layer %d; want 0755 0 -1", def.Mode(), def.UID(), def.Layer())
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct {
		name   string
		layers stack
		want   error
		entry  string
		layer  int
	}{
		{"dot-dot escapes", stack{tarOf(file("../etc/passwd", "x"))}, errEscapes, "../etc/passwd", 0},
		{"dot-dot escapes deep", stack{tarOf(file("a", ""), file("a/../../b", "x"))}, errEscapes, "a/../../b", 0},
		{"hardlink target escapes", stack{tarOf(hardlink("a", "../../x"))}, errEscapes, "a", 0},
		{"bare whiteout", stack{tarOf(file("a", "1")), tarOf(file("d/.wh.", ""))}, errBareWhiteout, "d/.wh.", 1},
		{"marker as a directory", stack{tarOf(file(".wh.a/b", ""))}, errMarkerDir, ".wh.a/b", 0},
		{"hardlink to nothing", stack{tarOf(file("a", "1")), tarOf(hardlink("b", "missing"))}, errLinkMissing, "b", 1},
		{"hardlink to itself", stack{tarOf(hardlink("a", "a"))}, errLinkMissing, "a", 0},
		{"hardlink to a later entry", stack{tarOf(hardlink("b", "a"), file("a", "1"))}, errLinkMissing, "b", 0},
		{"hardlink to a directory", stack{tarOf(dir("d"), hardlink("h", "d"))}, errLinkDir, "h", 0},
		{"root as a file", stack{tarOf(file("./", "x"))}, errRootType, "./", 0},
		{"parent is a file", stack{tarOf(file("a", "f")), tarOf(file("a/b", "x"))}, errNotDir, "a/b", 1},
		{"parent symlink to a file", stack{tarOf(file("f", "f"), symlink("a", "f"), file("a/b", "x"))}, errNotDir, "a/b", 0},
		{"symlink loop in a parent", stack{tarOf(symlink("a", "b"), symlink("b", "a"), file("a/x", "x"))}, errLoop, "a/x", 0},
		{"symlink loop in a whiteout", stack{tarOf(symlink("a", "a")), tarOf(whiteout("a/x"))}, errLoop, "a/.wh.x", 1},
		{"symlink makes a marker directory", stack{tarOf(symlink("a", ".wh.b"), file("a/x", "x"))}, errMarkerDir, "a/x", 0},
		{"unknown type", stack{{layer: &Layer{Entries: []Entry{{Name: "x", Type: 99}}}}}, errBadType, "x", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.layers.layers())
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, tc.want) {
				t.Fatalf("Merge error = %v; want an EntryError wrapping %v", err, tc.want)
			}
			if ee.Name != tc.entry || ee.Layer != tc.layer {
				t.Errorf("error names layer %d entry %q; want layer %d entry %q", ee.Layer, ee.Name, tc.layer, tc.entry)
			}
			if !strings.Contains(err.Error(), tc.entry) {
				t.Errorf("message %q does not name the entry", err)
			}
		})
	}
}

func TestInodes(t *testing.T) {
	s := stack{
		tarOf(dir("d"), file("d/a", "a"), hardlink("d/b", "d/a"), dir("d/e"), dir("d/f"), file("z", "z")),
		tarOf(hardlink("y", "d/a")),
	}
	tr := mustMerge(t, s)
	a, b, y := tr.Get("d/a"), tr.Get("d/b"), tr.Get("y")
	if a.Ino() != b.Ino() || a.Ino() != y.Ino() || a.Nlink() != 3 {
		t.Errorf("hardlink group: inos %d %d %d nlink %d; want one inode, nlink 3", a.Ino(), b.Ino(), y.Ino(), a.Nlink())
	}
	if n := tr.Get("d").Nlink(); n != 4 {
		t.Errorf("d nlink = %d; want 4 (2 + two subdirectories)", n)
	}
	if n := tr.Root().Nlink(); n != 3 {
		t.Errorf("root nlink = %d; want 3", n)
	}
	if tr.Get("d/e").Parent() != tr.Get("d").Ino() || tr.Root().Parent() != RootIno {
		t.Error("parent inode wrong")
	}
	if tr.Len() != 6 { // root d d/a(=b=y) d/e d/f z
		t.Errorf("Len = %d; want 6", tr.Len())
	}
	// Stable: the same layers give the same numbers.
	again := mustMerge(t, s)
	_ = tr.Walk(func(p string, n *Node) error {
		if m := again.Get(p); m == nil || m.Ino() != n.Ino() {
			t.Errorf("%s: inode not stable across merges", p)
		}
		return nil
	})
}

func TestRaw(t *testing.T) {
	s := stack{
		tarOf(file("a", "1")),
		tarOf(whiteout("a"), opaque("d"), file("d/x", "x"), hardlink("h", "a"), hardlink("i", "d/x")),
	}
	tr, err := Raw(s[1].layer, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, tr, s)
	want := []string{
		`.wh.a file 0000 0:0 ""`,
		"d dir 0755 0:0",
		`d/.wh..wh..opq file 0000 0:0 ""`,
		`d/x file 0644 0:0 "x" nlink=2`,
		`h file 0644 0:0 ""`,
		`i file 0644 0:0 "x" nlink=2`,
	}
	if d := diffLines(got, want); d != "" {
		t.Errorf("raw layer view differs:\n%s", d)
	}
}

// checkInvariants verifies what every merged tree must satisfy.
func checkInvariants(t testing.TB, tr *Tree) {
	t.Helper()
	paths := map[uint64]int{}
	err := tr.Walk(func(p string, n *Node) error {
		_, base := splitPath(p)
		if strings.HasPrefix(base, whiteoutPrefix) {
			t.Errorf("whiteout marker visible: %s", p)
		}
		if n.Type() == TypeHardlink || !n.Type().Valid() {
			t.Errorf("%s: bad type %v", p, n.Type())
		}
		if tr.Node(n.Ino()) != n {
			t.Errorf("%s: Node(Ino()) is not the node", p)
		}
		kids := tr.Children(n)
		subdirs := 0
		for i, k := range kids {
			if i > 0 && kids[i-1].Name >= k.Name {
				t.Errorf("%s: children not sorted: %q then %q", p, kids[i-1].Name, k.Name)
			}
			if tr.Lookup(n, k.Name).Ino() != k.Ino {
				t.Errorf("%s: Lookup(%q) disagrees with Children", p, k.Name)
			}
			if tr.Node(k.Ino).Type() == TypeDir {
				subdirs++
			}
		}
		if n.Type() == TypeDir && n.Nlink() != uint32(2+subdirs) {
			t.Errorf("%s: dir nlink %d; want %d", p, n.Nlink(), 2+subdirs)
		}
		if n.Type() != TypeDir {
			paths[n.Ino()]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for ino, c := range paths {
		if n := tr.Node(ino); n.Nlink() != uint32(c) {
			t.Errorf("inode %d: nlink %d but %d paths", ino, n.Nlink(), c)
		}
	}
	if tr.Root().Type() != TypeDir || tr.Root().Ino() != RootIno {
		t.Error("root is not directory inode 1")
	}
}
