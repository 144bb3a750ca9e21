package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/internal/oracle"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// requireBuild is the guard for tests that run ocifs build: FUSE and
// e2fsprogs.
func requireBuild(t testing.TB) {
	t.Helper()
	requireFUSEMount(t)
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				testenv.Missing(t, tool+" not found", "apt-get install -y e2fsprogs")
			}
		}
	}
}

// fsck runs e2fsck -fn on img and fails the test unless it is clean.
func fsck(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

// walkImage loop-mounts img read-only and walks it (root only).
func walkImage(t testing.TB, img string) []fswalk.Record {
	t.Helper()
	testenv.RequireRoot(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("loop-mounting %s: %v\n%s", img, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v\n%s", mnt, err, out)
		}
	}()
	recs, err := fswalk.Walk(mnt, fswalk.WalkOptions{Trusted: true})
	if err != nil {
		t.Fatalf("walking %s: %v", img, err)
	}
	return recs
}

func fileSHA256(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func statUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// sleepSecond lets the clock move, so a timestamp taken from it would
// show in a second build.
func sleepSecond() { time.Sleep(1100 * time.Millisecond) }

// buildLayers are the images of the build tests: the merge rules image
// (whiteouts, opaque directories, hardlinks across layers, devices,
// setuid, security.capability) and random stacks.
func buildLayers(t *testing.T) map[string][][]byte {
	cases := map[string][][]byte{"rules": rulesLayers()}
	for seed := uint64(11); seed <= 12; seed++ {
		cases[fmt.Sprintf("random-%d", seed)] = ti.Random(t, seed, 4, 120)
	}
	return cases
}

// TestBuildMatchesUmoci builds images from the real registry and reads
// them back: e2fsck clean, and a full walk equal to umoci's unpack of the
// same image (lost+found aside), and to the merged tree, mtimes included.
func TestBuildMatchesUmoci(t *testing.T) {
	requireBuild(t)
	testenv.RequireRoot(t) // loop mount
	reg := testregistry.Start(t)
	for name, layers := range buildLayers(t) {
		t.Run(name, func(t *testing.T) {
			comps := []ti.Compression{ti.Gzip, ti.Zstd, ti.Uncompressed, ti.Gzip}[:len(layers)]
			img := ti.Image(t, layers, ti.WithCompression(comps...))
			ref := reg.Repo(name) + ":v1"
			ti.Push(t, img, ref)
			out := filepath.Join(t.TempDir(), "rootfs.ext4")
			stdout := mustOcifs(t, nil, "build", "--verbose", ref, out)
			t.Log(strings.TrimSpace(stdout))
			fsck(t, out)
			got := walkImage(t, out)
			want, err := fswalk.Walk(oracle.UmociUnpackImage(t, img), fswalk.WalkOptions{Trusted: true})
			if err != nil {
				t.Fatal(err)
			}
			if d := fswalk.Diff(got, want, fswalk.DefaultDiff); len(d) > 0 {
				t.Errorf("image (a) differs from umoci (b) in %d ways:\n%s", len(d), strings.Join(d, "\n"))
			}
			tree, cimg := mergedTree(t, ref)
			exact := fswalk.DiffOptions{IgnorePaths: []string{"lost+found"}, MTimeGranularity: time.Second}
			if d := fswalk.Diff(got, treeRecords(t, tree, cimg), exact); len(d) > 0 {
				t.Errorf("image (a) differs from the merged tree (b) in %d ways:\n%s", len(d), strings.Join(d, "\n"))
			}
			if len(got) < 20 {
				t.Errorf("only %d paths in the image; the fixture is broken", len(got))
			}
		})
	}
}
