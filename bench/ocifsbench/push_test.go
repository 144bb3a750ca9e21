package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRunScriptParses keeps the bench scripts (run.sh, compact.sh and
// the registry.sh they source) syntactically valid in CI, where the
// benchmarks themselves never run.
func TestRunScriptParses(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on PATH")
	}
	for _, s := range []string{"run.sh", "compact.sh", "registry.sh"} {
		if out, err := exec.Command(bash, "-n", "../"+s).CombinedOutput(); err != nil {
			t.Fatalf("bash -n bench/%s: %v\n%s", s, err, out)
		}
	}
}

// TestLayersOf splits a small tree as push does and checks the layers:
// paths by prefix, parents before children in every layer, a hardlink
// group kept in its first path's layer, the cleanup layer's whiteouts.
func TestLayersOf(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/bin", "usr/lib", "usr/share/doc", "var/lib/apt/lists"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	for _, f := range []string{"etc/passwd", "usr/bin/a", "usr/lib/c", "usr/share/doc/README", "var/lib/apt/lists/Packages"} {
		must(t, os.WriteFile(filepath.Join(root, f), []byte(f+"\n"), 0o644))
	}
	must(t, os.Link(filepath.Join(root, "usr/bin/a"), filepath.Join(root, "usr/lib/b")))
	must(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))

	layers, _, err := layersOf(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != cleanupLayer+1 {
		t.Fatalf("%d layers, want %d", len(layers), cleanupLayer+1)
	}
	want := map[int]map[string]byte{
		0: {"bin": tar.TypeSymlink, "etc/": tar.TypeDir, "etc/passwd": tar.TypeReg, "var/lib/apt/lists/Packages": tar.TypeReg},
		1: {"usr/": tar.TypeDir, "usr/lib/": tar.TypeDir, "usr/lib/c": tar.TypeReg},
		2: {"usr/share/doc/README": tar.TypeReg},
		3: {"usr/bin/a": tar.TypeReg, "usr/lib/b": tar.TypeLink},
		4: {"var/lib/apt/lists/.wh.Packages": tar.TypeReg, "etc/ocifs-bench": tar.TypeReg},
	}
	for i, l := range layers {
		got := entries(t, l)
		for name, typ := range want[i] {
			if g, ok := got[name]; !ok || g != typ {
				t.Errorf("layer %d: %s has type %q (present %v), want %q", i, name, g, ok, typ)
			}
		}
	}
	if _, ok := entries(t, layers[1])["usr/lib/b"]; ok {
		t.Errorf("usr/lib/b is in layer 1; its hardlink group starts in layer 3")
	}
}

// entries lists a tar's names and types, failing if a name comes before
// its parent directory.
func entries(t *testing.T, b []byte) map[string]byte {
	t.Helper()
	out := map[string]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if dir := filepath.Dir(filepath.Clean(h.Name)); dir != "." {
			if _, ok := out[dir+"/"]; !ok {
				t.Errorf("%s comes before its parent %s/", h.Name, dir)
			}
		}
		out[h.Name] = h.Typeflag
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
