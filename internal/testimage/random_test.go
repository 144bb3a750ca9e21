package testimage

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

func TestRandomDeterministic(t *testing.T) {
	a := Random(t, 7, 3, 80)
	b := Random(t, 7, 3, 80)
	c := Random(t, 8, 3, 80)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("seed 7 layer %d differs between runs", i)
		}
	}
	if bytes.Equal(a[0], c[0]) {
		t.Fatal("seeds 7 and 8 give the same first layer")
	}
}

// TestRandomVariety checks that a few seeds cover every kind of entry and
// operation the generator promises.
func TestRandomVariety(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 5; seed++ {
		for l, layer := range RandomEntries(seed, 4, 120) {
			for _, e := range layer {
				for _, k := range classify(e, l) {
					seen[k]++
				}
			}
		}
	}
	for _, k := range []string{"dir", "file", "symlink", "hardlink", "fifo", "chardev",
		"whiteout", "opaque", "setuid", "xattr", "capability", "big", "upper-file", "upper-hardlink"} {
		if seen[k] == 0 {
			t.Errorf("no %s in 5 random stacks (seen %v)", k, seen)
		}
	}
}

func classify(e Entry, layer int) []string {
	h := e.Header
	base := path.Base(strings.TrimSuffix(h.Name, "/"))
	var ks []string
	switch {
	case base == ".wh..wh..opq":
		return []string{"opaque"}
	case strings.HasPrefix(base, ".wh."):
		return []string{"whiteout"}
	case h.Typeflag == tar.TypeDir:
		ks = append(ks, "dir")
	case h.Typeflag == tar.TypeReg:
		ks = append(ks, "file")
		if layer > 0 {
			ks = append(ks, "upper-file")
		}
		if h.Size > 64<<10 {
			ks = append(ks, "big")
		}
	case h.Typeflag == tar.TypeSymlink:
		ks = append(ks, "symlink")
	case h.Typeflag == tar.TypeLink:
		ks = append(ks, "hardlink")
		if layer > 0 {
			ks = append(ks, "upper-hardlink")
		}
	case h.Typeflag == tar.TypeFifo:
		ks = append(ks, "fifo")
	case h.Typeflag == tar.TypeChar:
		ks = append(ks, "chardev")
	}
	if h.Mode&0o4000 != 0 {
		ks = append(ks, "setuid")
	}
	if _, ok := h.PAXRecords["SCHILY.xattr.security.capability"]; ok {
		ks = append(ks, "capability")
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.user.") {
			ks = append(ks, "xattr")
			break
		}
	}
	return ks
}

// TestRandomValid replays random stacks through a small model of the OCI
// rules and checks the generator's promises: each path written at most
// once per layer, whiteouts name only lower paths, parents exist, hardlink
// targets exist.
func TestRandomValid(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		state := map[string]byte{}
		for l, layer := range RandomEntries(seed, 4, 100) {
			if err := checkLayer(state, layer); err != nil {
				t.Fatalf("seed %d layer %d: %v", seed, l, err)
			}
		}
	}
	// hardlinks to symlinks are the rarest case; check they occur at all
	found := false
	for seed := uint64(1); seed <= 20 && !found; seed++ {
		state := map[string]byte{}
		for _, layer := range RandomEntries(seed, 4, 100) {
			for _, e := range layer {
				if e.Header.Typeflag == tar.TypeLink && state[e.Header.Linkname] == tar.TypeSymlink {
					found = true
				}
				applyEntry(state, map[string]bool{}, e)
			}
		}
	}
	if !found {
		t.Error("no hardlink to a symlink in 20 seeds")
	}
}

func TestRandomReadByGNUTar(t *testing.T) {
	tarBin := testenv.RequireTool(t, "tar", "apt-get install -y tar")
	for i, l := range Random(t, 3, 3, 150) {
		f := filepath.Join(t.TempDir(), "l.tar")
		if err := os.WriteFile(f, l, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tarBin, "-tvf", f).CombinedOutput()
		if err != nil {
			t.Fatalf("layer %d: tar -tvf: %v\n%s", i, err, out)
		}
		if n := strings.Count(string(out), "\n"); n < 150 {
			t.Fatalf("layer %d: tar lists %d entries, want at least 150", i, n)
		}
	}
}
