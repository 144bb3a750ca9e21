package builder

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
)

// noLeftovers checks that a failed build left nothing in dir.
func noLeftovers(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
	}
}

func dataDir(t testing.TB, mib int) string {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range mib {
		f.file("data/"+name(i, 6), randomBytes(r, 1<<20), 0o644)
	}
	return f.dir
}

func TestOutputDirMissing(t *testing.T) {
	requireE2fsprogs(t)
	src := dataDir(t, 1)
	out := filepath.Join(t.TempDir(), "missing", "image.ext4")
	_, err := Build(context.Background(), dirTree(t, src), src, out, Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("output in a missing directory: %v, want ErrNotExist", err)
	}
	dirOut := t.TempDir()
	_, err = Build(context.Background(), dirTree(t, src), src, dirOut, Options{})
	if err == nil {
		t.Errorf("output onto a directory: no error")
	}
}

func TestSizeTooSmall(t *testing.T) {
	requireE2fsprogs(t)
	src := dataDir(t, 20)
	dir := t.TempDir()
	out := filepath.Join(dir, "image.ext4")
	_, err := Build(context.Background(), dirTree(t, src), src, out, Options{Size: 12 << 20})
	var small *TooSmallError
	if !errors.As(err, &small) || small.Have != 12<<20 || small.Need < 20<<20 || small.Need > 30<<20 {
		t.Fatalf("20 MiB into --size 12M: %v, want TooSmallError needing 20 to 30 MiB", err)
	}
	t.Logf("error: %v", err)
	noLeftovers(t, dir)
}

// TestDiskFull builds onto a 16 MiB tmpfs an image that needs more.
func TestDiskFull(t *testing.T) {
	requireE2fsprogs(t)
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "ocifs-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	src := dataDir(t, 30)
	_, err := Build(context.Background(), dirTree(t, src), src, filepath.Join(dir, "image.ext4"), Options{})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("30 MiB onto a 16 MiB disk: %v, want ErrNoSpace", err)
	}
	t.Logf("error: %v", err)
	noLeftovers(t, dir)
}

// TestCancel interrupts mkfs and checks nothing is left.
func TestCancel(t *testing.T) {
	requireE2fsprogs(t)
	f := newFixture(t)
	f.file("big", randomBytes(rand.New(rand.NewPCG(1, 1)), 300<<20), 0o644)
	tree := dirTree(t, f.dir)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := Options{Progress: func(p Phase) {
		if p == PhaseMkfs {
			time.AfterFunc(100*time.Millisecond, cancel)
		}
	}}
	start := time.Now()
	_, err := Build(ctx, tree, f.dir, filepath.Join(dir, "image.ext4"), opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled build took %v to return", d)
	}
	noLeftovers(t, dir)
}

func TestMissingTools(t *testing.T) {
	tr := rootfsTree(t)
	src, dir := t.TempDir(), t.TempDir()
	for _, tools := range []Tools{
		{Mkfs: "/nonexistent/mkfs.ext4"},
		{Mkfs: "/bin/true"}, // not mke2fs: no version banner
	} {
		_, err := Build(context.Background(), tr, src, filepath.Join(dir, "image.ext4"), Options{Tools: tools})
		if !errors.Is(err, ErrMissingTool) {
			t.Errorf("mkfs %s: %v, want ErrMissingTool", tools.Mkfs, err)
		}
	}
	noLeftovers(t, dir)
}

// TestRetryWhenShort gives Build a source with more data than the tree
// it sizes from (a file grew after the tree was taken): mkfs runs out of
// space, and the automatically sized build is redone bigger instead of
// failing.
func TestRetryWhenShort(t *testing.T) {
	requireE2fsprogs(t)
	src := dataDir(t, 20)
	tree := dirTree(t, src)
	f, err := os.OpenFile(filepath.Join(src, "data", name(0, 6)), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(rand.New(rand.NewPCG(9, 9)), 3<<20)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "image.ext4")
	res, err := Build(context.Background(), tree, src, out, Options{})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if res.Retries != 1 {
		t.Errorf("%d retries, want 1", res.Retries)
	}
	if os.Geteuid() == 0 {
		sameTree(t, src, out)
	}
	// With the size fixed, the same shortfall is an error.
	_, err = Build(context.Background(), tree, src, out+".fixed", Options{Size: int64(res.Layout.Need*blockSize) * 9 / 10})
	var small *TooSmallError
	if !errors.As(err, &small) {
		t.Errorf("fixed size: %v, want TooSmallError", err)
	}
}
