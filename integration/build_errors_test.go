package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// dataLayers is an image of n MiB of incompressible data in 1 MiB files.
func dataLayers(n int) [][]byte {
	r := rand.New(rand.NewPCG(5, 5))
	var es []ti.Entry
	for i := range n {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(r.Uint32() | 1)
		}
		es = append(es, ti.File(fmt.Sprintf("data/f%03d", i), string(b)))
	}
	return [][]byte{ti.Layer(es...)}
}

// emptyDir fails the test if dir holds anything: a failed build must
// leave neither the output nor its temporary directory.
func emptyDir(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

// checkFailure checks a failed run's exit code and its one-line message.
func checkFailure(t testing.TB, what string, code, wantCode int, stderr string, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d\n%s", what, code, wantCode, stderr)
	}
	if !strings.HasPrefix(stderr, "ocifs: ") {
		t.Errorf("%s: stderr does not start with \"ocifs: \":\n%s", what, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, w, stderr)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	requireBuild(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("data") + ":v1"
	ti.Push(t, ti.Image(t, dataLayers(20), ti.WithCompression(ti.Uncompressed)), ref)

	dir := t.TempDir()
	_, stderr, code := runOcifs(t, nil, "build", ref, filepath.Join(dir, "missing", "out.ext4"))
	checkFailure(t, "missing output directory", code, 1, stderr, "output directory", "no such file", "hint: create the output directory")
	emptyDir(t, dir)

	_, stderr, code = runOcifs(t, nil, "build", "--size", "12M", ref, filepath.Join(dir, "out.ext4"))
	checkFailure(t, "--size too small", code, 1, stderr, "does not fit in 12.0 MiB: needs about", "hint: give a bigger --size")
	emptyDir(t, dir)

	for _, args := range [][]string{
		{"--size", "100M", "--free", "1M"}, {"--size", "lots"}, {"--headroom", "-3"},
		{"--label", "a label longer than sixteen"}, {"--uuid", "nope"}, {"--inodes", "0"},
	} {
		_, stderr, code = runOcifs(t, nil, append(append([]string{"build"}, args...), ref, filepath.Join(dir, "out.ext4"))...)
		checkFailure(t, strings.Join(args, " "), code, 2, stderr)
	}
	_, stderr, code = runOcifs(t, nil, "build", ref+"-missing", filepath.Join(dir, "out.ext4"))
	checkFailure(t, "missing image", code, 3, stderr)
	emptyDir(t, dir)

	// OUT is replaced by a rename: only a regular file may be there.
	// /dev/null as OUT once became an 8 MB regular file.
	fifo, link := filepath.Join(dir, "fifo.ext4"), filepath.Join(dir, "link.ext4")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "target.ext4"), link); err != nil {
		t.Fatal(err)
	}
	for out, want := range map[string]string{os.DevNull: "but a character device", fifo: "but a FIFO", link: "is a symbolic link", dir: "is a directory"} {
		before, _ := os.Lstat(out)
		_, stderr, code = runOcifs(t, nil, "build", ref, out)
		checkFailure(t, "build to "+out, code, 2, stderr, want, "hint: run 'ocifs build --help'")
		if after, err := os.Lstat(out); err != nil || after.Mode() != before.Mode() {
			t.Errorf("build to %s changed it: %v, %v", out, after.Mode(), err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "target.ext4")); err == nil {
		t.Error("a refused build wrote through the symlink")
	}
}

// TestBuildDiskFull writes the image onto a 16 MiB tmpfs.
func TestBuildDiskFull(t *testing.T) {
	requireBuild(t)
	testenv.RequireRoot(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("data") + ":v1"
	ti.Push(t, ti.Image(t, dataLayers(30), ti.WithCompression(ti.Uncompressed)), ref)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "ocifs-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	_, stderr, code := runOcifs(t, nil, "build", ref, filepath.Join(dir, "out.ext4"))
	checkFailure(t, "full disk", code, 1, stderr, "no space left", "hint: free space")
	emptyDir(t, dir)
}

// TestBuildInterrupted sends SIGINT (as Ctrl-C does, to the process
// group) while mkfs.ext4 runs, and SIGHUP (as a closed terminal or SSH
// session does): exit 130, nothing at OUT, no temporary directory, no
// mount left. Under nohup, SIGHUP is ignored and the build completes.
func TestBuildInterrupted(t *testing.T) {
	requireBuild(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("data") + ":v1"
	ti.Push(t, ti.Image(t, dataLayers(160), ti.WithCompression(ti.Uncompressed)), ref)
	mustOcifs(t, nil, "pull", ref)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, 0} {
		name := sig.String()
		if sig == 0 {
			name, sig = "nohup", syscall.SIGHUP
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
			defer cancel()
			cmd := ocifsCommand(ctx, t, nil, "build", ref, filepath.Join(dir, "out.ext4"))
			if name == "nohup" {
				nohup, err := exec.LookPath("nohup")
				if err != nil {
					t.Skip("no nohup")
				}
				cmd.Path, cmd.Args = nohup, append([]string{"nohup"}, cmd.Args...)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitForFile(t, filepath.Join(dir, ".out.ext4.ocifs-build-*", "image.ext4"))
			time.Sleep(150 * time.Millisecond)
			syscall.Kill(-cmd.Process.Pid, sig)
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if name == "nohup" {
				if err != nil {
					t.Fatalf("a build under nohup stopped at SIGHUP: exit %d (%v)\n%s", code, err, stderr.String())
				}
				fsck(t, filepath.Join(dir, "out.ext4"))
				return
			}
			if err == nil || code != 130 || strings.TrimSpace(stderr.String()) != "ocifs: interrupted" {
				t.Errorf("interrupted build: exit %d (%v), want 130 and 'ocifs: interrupted'\n%s", code, err, stderr.String())
			}
			emptyDir(t, dir)
			if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte("ocifs:"+ref)) {
				t.Errorf("the build's mount is still there:\n%s", mi)
			}
		})
	}
}

// waitForFile waits until a path matching pattern exists.
func waitForFile(t testing.TB, pattern string) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout())
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", pattern)
}

// TestPullCacheDiskFull pulls into a cache on a 16 MiB tmpfs: a blob too
// big for it, and a blob that fits but whose unpacked copy does not. The
// error says the disk is full (it used to blame the registry: "got N
// bytes, want M", exit 3), exits 1 with a hint, and leaves no blob under
// its final name.
func TestPullCacheDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testregistry.Start(t)
	for name, mib := range map[string]int{"blob": 24, "unpacked copy": 10} {
		t.Run(name, func(t *testing.T) {
			ref := reg.Repo("full") + fmt.Sprintf(":v%d", mib)
			ti.Push(t, ti.Image(t, dataLayers(mib), ti.WithCompression(ti.Gzip)), ref)
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "ocifs-test", dir).CombinedOutput(); err != nil {
				t.Fatalf("mounting a tmpfs: %v\n%s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
			_, stderr, code := runOcifs(t, []string{"OCIFS_CACHE_DIR=" + dir}, "pull", ref)
			checkFailure(t, "pull into a full cache", code, 1, stderr, "into the cache", "no space left on device", "hint: the cache's disk is full")
			if strings.Contains(stderr, "digest") {
				t.Errorf("a full disk reported as a digest problem:\n%s", stderr)
			}
			blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
			for _, b := range blobs {
				if fi, err := os.Stat(b); err == nil && fi.Size() > 1<<20 {
					t.Errorf("a layer blob is stored: %s", b)
				}
			}
		})
	}
}
