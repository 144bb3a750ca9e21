package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/internal/testenv"
)

// requireE2fsprogs skips (or fails in strict mode) without the tools.
func requireE2fsprogs(t testing.TB) {
	t.Helper()
	if _, err := FindTools(context.Background(), Tools{}); err != nil {
		testenv.Missing(t, err.Error(), "apt-get install -y e2fsprogs (1.43 or later)")
	}
}

// buildDir runs Build over a fixture directory into a fresh output path.
func buildDir(t testing.TB, dir string, opts Options) (*Result, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.ext4")
	if opts.Seed == "" {
		opts.Seed = "test:" + t.Name()
	}
	res, err := Build(context.Background(), dirTree(t, dir), dir, out, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return res, out
}

// readBack loop-mounts img read-only and walks it (root only).
func readBack(t testing.TB, img string) []fswalk.Record {
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
		t.Fatalf("walking the image: %v", err)
	}
	return recs
}

// sameTree checks the image holds exactly the source directory.
func sameTree(t testing.TB, src, img string) {
	t.Helper()
	want, err := fswalk.Walk(src, fswalk.WalkOptions{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readBack(t, img)
	opts := fswalk.DiffOptions{IgnorePaths: []string{"lost+found"}}
	if d := fswalk.Diff(want, got, opts); d != nil {
		t.Errorf("image differs from the source (%d differences):\n%s", len(d), strings.Join(first(d, 30), "\n"))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func sha256File(t testing.TB, p string) string {
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

// randomBytes returns n deterministic bytes, none of its 4 KiB blocks all
// zero (mkfs.ext4 -d would leave such a block out).
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64() | 1
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// slack describes how the estimate and the image compare.
func slack(res *Result) string {
	l := res.Layout
	return fmt.Sprintf("blocks used %d of %d (need estimate %d, +%.2f%%), inodes used %d of %d (estimate %d)",
		res.UsedBlocks, res.Blocks, l.Need, 100*float64(int64(l.Need)-int64(res.UsedBlocks))/float64(res.UsedBlocks),
		res.UsedInodes, res.Inodes, l.Content.Inodes)
}

// checkEstimate holds Plan to its promise on content without zero blocks:
// never short (no retry, used <= estimate, inodes exact) and not much
// over.
func checkEstimate(t testing.TB, res *Result, overPct float64, overBlocks uint64) {
	t.Helper()
	l := res.Layout
	t.Log(slack(res))
	if res.Retries != 0 {
		t.Errorf("the build was retried %d times: the estimate was short", res.Retries)
	}
	if res.UsedBlocks > l.Need {
		t.Errorf("used %d blocks, more than the estimate %d", res.UsedBlocks, l.Need)
	}
	if limit := uint64(float64(res.UsedBlocks)*overPct/100) + overBlocks; l.Need-res.UsedBlocks > limit {
		t.Errorf("estimate %d is %d blocks over the %d used (allowed %d)", l.Need, l.Need-res.UsedBlocks, res.UsedBlocks, limit)
	}
	if res.UsedInodes != l.Content.Inodes {
		t.Errorf("used %d inodes, estimated %d", res.UsedInodes, l.Content.Inodes)
	}
}

// TestWorkDirOfKilledBuildRemoved checks that a build removes the
// unlocked work directory a killed build of the same output left, and
// leaves alone a locked one (a build still running) and other outputs'.
func TestWorkDirOfKilledBuildRemoved(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "root.ext4")
	stale := filepath.Join(dir, workPrefix(out)+"123")
	other := filepath.Join(dir, workPrefix(filepath.Join(dir, "other.ext4"))+"456")
	for _, d := range []string{stale, other} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	running, err := newWorkDir(out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer running.Remove()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a killed build's work dir survived: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another output's work dir was removed: %v", err)
	}
	second, err := newWorkDir(out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Remove()
	if _, err := os.Stat(running.Path); err != nil {
		t.Errorf("a running build's work dir was removed: %v", err)
	}
}
