package integration

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/faultproxy"
	"github.com/ocifs/ocifs/internal/testenv"
)

// SIGKILL of `ocifs build` (that one process, as `kill -9 PID` does) at
// chosen moments: while pulling, reading the layer indexes to merge,
// saving the merged tree, once the private mount is up, when mkfs.ext4
// starts, in the middle of mkfs, when e2fsck starts. The FUSE server
// dies with the process, so its children must end on their own (mkfs
// gets ENOTCONN from the dead mount) within a bound; nothing may appear
// at OUT; the cache must verify; and a rerun must give an image byte for
// byte that of a build never killed.

// childExitTimeout bounds how long mkfs.ext4, e2fsck or debugfs may run
// on after the build that started them was killed.
const childExitTimeout = time.Minute

func TestKillBuild(t *testing.T) {
	requireBuild(t)
	f := killImage(t)
	want, blocks := referenceBuild(t, f.ref)
	// A moment is armed before ocifs starts (pid is 0 until then) and
	// fires when it comes; out is the build's output.
	type moment func(t *testing.T, pid func() int, out string) <-chan string
	inotify := func(sub string, mask uint32, pattern string) moment {
		re := regexp.MustCompile(pattern)
		return func(t *testing.T, _ func() int, _ string) <-chan string {
			dir := filepath.Join(cacheDir(t), sub)
			mustOcifs(t, nil, "pull", f.ref) // so that the moment is the build's own
			return watchEvents(t, dir, mask, re.MatchString)
		}
	}
	child := func(what string, match func(string) bool) moment {
		return func(t *testing.T, pid func() int, _ string) <-chan string {
			return poll(t, what, func() bool { return hasChild(pid(), match) })
		}
	}
	// mkfs is halfway once the image being built takes half the disk
	// space of the reference image.
	halfway := func(t *testing.T, pid func() int, out string) <-chan string {
		return poll(t, "mkfs.ext4 -d halfway", func() bool {
			m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.ocifs-build-*", "image.ext4"))
			return len(m) > 0 && hasChild(pid(), isMkfs) && diskBlocks(m[0]) >= blocks/2
		})
	}
	moments := map[string]moment{
		"pulling": func(*testing.T, func() int, string) <-chan string {
			ch := make(chan string, 1)
			f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Stall, After: f.size / 2, Times: 1, Signal: ch})
			return ch
		},
		"reading indexes": inotify("ocifs/index/sha256", unix.IN_OPEN, `^[0-9a-f]{64}$`),
		"saving the tree": inotify("ocifs/tmp", unix.IN_CREATE, `.`),
		"mounted": func(t *testing.T, _ func() int, _ string) <-chan string {
			return poll(t, "mounted", func() bool { return len(buildMounts(f.ref)) > 0 })
		},
		"mkfs starts":   child("mkfs.ext4 -d started", isMkfs),
		"mkfs halfway":  halfway,
		"e2fsck starts": child("e2fsck started", isE2fsck),
	}
	for name, m := range moments {
		t.Run(name, func(t *testing.T) {
			var (
				k             *killable
				outDir, out   string
				tmp, what     string
				missedMoments int
			)
			// A moment that passes too quickly to be caught on a loaded
			// machine lets the build finish: that run proves nothing,
			// so the moment gets another try.
			for {
				f.proxy.Reset()
				outDir = t.TempDir()
				out = filepath.Join(outDir, "rootfs.ext4")
				tmp = t.TempDir() // the build's mount point goes there
				k = newKillable(t, []string{"TMPDIR=" + tmp}, "build", f.ref, out)
				fired := m(t, k.pid, out)
				k.start(t)
				what = k.killAt(t, fired, func() []string { return buildMounts(f.ref) })
				f.proxy.Reset()
				if what != "finished" && k.code != 0 { // killed, not done
					break
				}
				if missedMoments++; missedMoments == 3 {
					t.Fatalf("the build finished before %q three times", name)
				}
				t.Logf("the build finished (exit %d) before the moment came; again", k.code)
			}
			t.Logf("killed at %s (exit %d)", what, k.code)
			k.waitChildren(t)
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a killed build left %s", out)
			}
			t.Logf("left behind: %s next to OUT, %d mounts (cleaned up with ocifs umount), %d directories in TMPDIR",
				describeTemps(outDir), cleanBuildMounts(t, f.ref), len(mountPointsIn(tmp)))
			checkBlobsVerify(t)
			mustOcifs(t, nil, "build", f.ref, out)
			if got := fileSHA256(t, out); got != want {
				t.Errorf("the rerun's image differs from an uninterrupted build's: sha256 %s, want %s", got, want)
			}
			mustOcifs(t, nil, "cache", "verify")
			if left := buildTemps(outDir); len(left) > 0 {
				t.Logf("after the rerun, still left next to OUT: %v", left)
			}
		})
	}
}

// referenceBuild builds ref into a fresh cache and returns the image's
// sha256 and the disk space it takes, in 512-byte blocks.
func referenceBuild(t *testing.T, ref string) (string, int64) {
	t.Helper()
	env := []string{"OCIFS_CACHE_DIR=" + filepath.Join(t.TempDir(), "reference")}
	out := filepath.Join(t.TempDir(), "reference.ext4")
	mustOcifs(t, env, "--version") // builds the binary outside the timing
	start := time.Now()
	mustOcifs(t, env, "build", ref, out)
	fsck(t, out)
	blocks := diskBlocks(out)
	t.Logf("an uninterrupted build takes %v and makes an image of %d KiB on disk", time.Since(start).Round(time.Millisecond), blocks/2)
	return fileSHA256(t, out), blocks
}

// diskBlocks returns the 512-byte blocks a file takes on disk, or 0.
func diskBlocks(p string) int64 {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return 0
	}
	return st.Blocks
}

// The build's tools, told apart by their command lines: mkfs.ext4 also
// runs at the start, without -d, to check that it has -d.
var (
	isMkfs   = regexp.MustCompile(`^\S*mkfs\.ext4 .*-d `).MatchString
	isE2fsck = regexp.MustCompile(`^\S*e2fsck `).MatchString
)

// hasChild reports whether pid has a child whose command line matches.
func hasChild(pid int, match func(string) bool) bool {
	for _, c := range childPids(pid) {
		if match(c) {
			return true
		}
	}
	return false
}

// buildTemps lists the build's temporary directories in dir.
func buildTemps(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, ".*.ocifs-build-*"))
	return m
}

// describeTemps says how many temporary directories of builds dir holds,
// and how much disk their files take.
func describeTemps(dir string) string {
	temps := buildTemps(dir)
	var used int64
	for _, d := range temps {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			var st unix.Stat_t
			if err == nil && unix.Lstat(p, &st) == nil {
				used += st.Blocks * 512
			}
			return nil
		})
	}
	return fmt.Sprintf("%d temporary directories (%d KiB on disk)", len(temps), used>>10)
}

// mountPointsIn lists the build mount points (ocifs-build-*) in dir.
func mountPointsIn(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "ocifs-build-*"))
	return m
}

// buildMounts lists the mount points of FUSE mounts serving ref (their
// source is "ocifs:" and the normalized ref, which holds the test's
// unique repository prefix).
func buildMounts(ref string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if ok && len(a) > 4 && len(b) > 1 && strings.HasPrefix(b[0], "fuse") &&
			strings.HasPrefix(b[1], "ocifs:") && strings.HasSuffix(unescapeMountinfo(b[1]), ref) {
			out = append(out, unescapeMountinfo(a[4]))
		}
	}
	return out
}

// cleanBuildMounts removes, with ocifs umount, the mounts a killed build
// of ref left, and their directories; it returns how many there were.
func cleanBuildMounts(t *testing.T, ref string) int {
	t.Helper()
	mnts := buildMounts(ref)
	for _, m := range mnts {
		if _, stderr, code := runOcifs(t, nil, "umount", m); code != 0 {
			t.Errorf("ocifs umount %s (left by a killed build): exit %d: %s", m, code, stderr)
			continue
		}
		if err := os.Remove(m); err != nil {
			t.Errorf("removing %s after unmounting it: %v", m, err)
		}
	}
	return len(mnts)
}

// watchEvents reports (once) the name of the first entry of dir for
// which an inotify event in mask arrives and match is true.
func watchEvents(t *testing.T, dir string, mask uint32, match func(string) bool) <-chan string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	ch := make(chan string, 1)
	stop, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		readEvents(fd, stop, func(name string) bool {
			if !match(name) {
				return false
			}
			ch <- name
			return true
		})
	}()
	t.Cleanup(func() {
		close(stop)
		<-finished
		unix.Close(fd)
	})
	return ch
}

// TestKillBuildLeavesNothing kills `ocifs build` in the middle of mkfs,
// then builds the same output again and prunes the cache: nothing of the
// killed build may be left, neither its temporary directory next to OUT
// (holding a partial image) nor its mount, dead since its server died.
func TestKillBuildLeavesNothing(t *testing.T) {
	requireBuild(t)
	f := killImage(t)
	mustOcifs(t, nil, "pull", f.ref)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "rootfs.ext4")
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp} // where the build makes its mount point
	k := newKillable(t, env, "build", f.ref, out)
	var seen time.Time
	fired := poll(t, "mkfs running", func() bool {
		if seen.IsZero() && hasChild(k.pid(), isMkfs) {
			seen = time.Now()
		}
		return !seen.IsZero() && time.Since(seen) > 300*time.Millisecond
	})
	k.start(t)
	t.Logf("killed at %s", k.killAt(t, fired, func() []string { return buildMounts(f.ref) }))
	k.waitChildren(t)
	t.Cleanup(func() { cleanBuildMounts(t, f.ref) })
	mustOcifs(t, env, "build", f.ref, out)
	mustOcifs(t, nil, "cache", "prune")
	if left := buildTemps(outDir); len(left) > 0 {
		t.Errorf("after a rerun and a prune, the killed build's %s are still next to OUT: %v", describeTemps(outDir), left)
	}
	if mnts := buildMounts(f.ref); len(mnts) > 0 {
		t.Errorf("after a rerun and a prune, the killed build's mount is still there: %v", mnts)
	}
	if dirs := mountPointsIn(tmp); len(dirs) > 0 {
		t.Errorf("after a rerun and a prune, the killed build's mount point is still in TMPDIR: %v", dirs)
	}
}

// TestKillBuildWhileWarming SIGKILLs `ocifs build` at random moments of
// the first 300 ms of its mount, over and over: while its warm-up walk
// and mkfs.ext4 -d read the mount. However the kill lands, the process
// and its mkfs must be gone at once (mkfs failing with ENOTCONN), and
// `ocifs umount` must remove the dead mount.
func TestKillBuildWhileWarming(t *testing.T) {
	requireBuild(t)
	testenv.RequireRoot(t) // to abort a wedged connection through fusectl
	f := killImage(t)
	mustOcifs(t, nil, "pull", f.ref)
	r := rand.New(rand.NewPCG(1, 2))
	attempts, budget := 0, 30*time.Second
	for start := time.Now(); time.Since(start) < budget && !t.Failed(); attempts++ {
		out := filepath.Join(t.TempDir(), "rootfs.ext4")
		k := newKillable(t, []string{"TMPDIR=" + t.TempDir()}, "build", f.ref, out)
		delay := time.Duration(r.IntN(300)) * time.Millisecond
		var mounted time.Time
		fired := poll(t, "mounted", func() bool {
			if mounted.IsZero() && len(buildMounts(f.ref)) > 0 {
				mounted = time.Now()
			}
			return !mounted.IsZero() && time.Since(mounted) >= delay
		})
		k.start(t)
		k.killAt(t, fired, func() []string { return buildMounts(f.ref) })
		k.waitChildren(t)
		cleanBuildMounts(t, f.ref)
	}
	t.Logf("%d kills", attempts)
}
