package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/demo"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// TestBuildAsNobodyIsIdentical builds the same image as root and as uid
// 65534 (through fusermount3, with a PATH that lacks /usr/sbin, as an
// ordinary user's does): the two images must be byte-identical, owners,
// setuid bits, devices and capabilities included.
func TestBuildAsNobodyIsIdentical(t *testing.T) {
	requireBuild(t)
	testenv.RequireRoot(t)
	testenv.RequireUnprivilegedFUSE(t)
	reg := testregistry.Start(t)
	img := ti.Image(t, rulesLayers(), ti.WithCompression(ti.Gzip))
	ref := reg.Repo("rules") + ":v1"
	ti.Push(t, img, ref)

	rootOut := filepath.Join(t.TempDir(), "root.ext4")
	mustOcifs(t, nil, "build", ref, rootOut)
	dir := userDir(t, nobodyUID, nobodyGID)
	userOut := filepath.Join(dir, "nobody.ext4")
	stdout, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, []string{"PATH=/usr/bin:/bin"}, "build", ref, userOut)
	if code != 0 {
		t.Fatalf("build as nobody: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	fsck(t, userOut)
	if a, b := fileSHA256(t, rootOut), fileSHA256(t, userOut); a != b {
		t.Errorf("root build %s and nobody build %s differ", a, b)
	}
	st, err := os.Stat(userOut)
	if err != nil {
		t.Fatal(err)
	}
	if uid := statUID(st); uid != nobodyUID {
		t.Errorf("the image belongs to uid %d, not to the user who built it", uid)
	}
}

// TestBuildReproducible builds the demo image twice a second apart, and
// once more from a fresh cache: the bytes must not change.
func TestBuildReproducible(t *testing.T) {
	requireBuild(t)
	reg := testregistry.Start(t)
	img, err := demo.Image()
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Repo("demo") + ":v1"
	ti.Push(t, img, ref)
	dir := t.TempDir()
	var sums []string
	for i, env := range [][]string{nil, nil, {"OCIFS_CACHE_DIR=" + filepath.Join(dir, "fresh-cache")}} {
		out := filepath.Join(dir, strings.Repeat("x", i+1)+".ext4")
		mustOcifs(t, env, "build", "--label", "demo", ref, out)
		sums = append(sums, fileSHA256(t, out))
		if i == 0 {
			sleepSecond()
		}
	}
	if sums[0] != sums[1] || sums[0] != sums[2] {
		t.Errorf("builds differ: %v", sums)
	}
	other := filepath.Join(dir, "other.ext4")
	mustOcifs(t, nil, "build", "--label", "other", ref, other)
	if fileSHA256(t, other) == sums[0] {
		t.Errorf("a different --label gave the same bytes; the comparison proves nothing")
	}
}
