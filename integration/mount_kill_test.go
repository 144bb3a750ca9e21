package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/faultproxy"
	"github.com/ocifs/ocifs/internal/fsload"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
	"github.com/ocifs/ocifs/overlay"
)

// probeTimeout bounds each access to a mount whose server was killed: the
// kernel must answer ENOTCONN at once, never block.
const probeTimeout = 5 * time.Second

// TestKilledServerUnderLoad: `ocifs mount` refuses a live mount point;
// then the server is killed with SIGKILL while 16 readers and a walker
// load the mount and the test holds a file open. Nothing fails before
// the kill; operations in flight fail with ECONNABORTED (or EIO, see
// checkKillErrnos), every one started afterwards with ENOTCONN, each
// within a bound (none hangs); mounting over the dead mount is refused with a hint; `ocifs
// umount` cleans it up although a file is still open, and a new mount on
// the same directory shows the image.
func TestKilledServerUnderLoad(t *testing.T) {
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("killed-load") + ":v1"
	ti.Push(t, ti.Image(t, ti.Random(t, 22, 3, 300)), ref)
	dir, pid := mountSmall(t, ref)
	checkRefusesLiveMount(t, ref, dir, pid)

	tree, img := mergedTree(t, ref)
	f := openSomeFile(t, dir, tree)
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan *fsload.Result, 1)
	go func() {
		results <- fsload.Run(ctx, fsload.Config{Root: dir, Readers: 16, Walkers: 1, Duration: time.Minute,
			Direct: true, OpTimeout: probeTimeout}, fsload.NewExpect(tree, img))
	}()
	time.Sleep(time.Second)
	killed := time.Now()
	killAndWait(t, pid)
	time.Sleep(500 * time.Millisecond)
	cancel()
	res := <-results
	t.Logf("load across the kill: %s\nfailures by errno: %v", res, res.Errnos)
	if len(res.Stuck) > 0 {
		t.Fatalf("operations hang on the dead mount:\n%v", res.Err())
	}
	if res.Errors == 0 {
		t.Fatal("no operation failed after the kill")
	}
	if res.First.Before(killed) {
		t.Errorf("an operation failed %v before the kill:\n%v", killed.Sub(res.First), res.Err())
	}
	checkKillErrnos(t, res, 16+1)
	probeDead(t, dir, f)

	_, stderr, code := runOcifs(t, nil, "mount", ref, dir)
	checkFailure(t, "mount over a dead mount", code, 1, stderr, "server is gone", "hint: clean it up with: ocifs umount "+dir)
	mustOcifs(t, nil, "umount", dir) // f is still open: a dead busy mount is detached
	f.Close()
	if isMountPoint(dir) {
		t.Fatal("still mounted after ocifs umount")
	}
	mustOcifs(t, nil, "mount", ref, dir)
	requireNoDiff(t, "remount (a) vs merged tree (b)", walkMount(t, dir), treeRecords(t, tree, img), exact)
	pid = serverPid(t, dir)
	mustOcifs(t, nil, "umount", dir)
	checkGone(t, dir, pid)
}

// checkKillErrnos checks how the operations failed across the kill of a
// server with workers operations in flight. Requests started after the
// kill find the connection gone (ENOTCONN); those queued or being
// answered at the kill are aborted (ECONNABORTED). A request the dying
// server was copying in or out at that instant ends with EIO: the copy
// faults because the process is being killed, and the kernel ends the
// request with EIO while the connection is still up (fs/fuse/dev.c,
// fuse_dev_do_read and fuse_dev_do_write). That can only happen to
// requests in flight, at most one per worker; anything else, or more
// EIO than that, is a failure of ours.
func checkKillErrnos(t *testing.T, res *fsload.Result, workers int) {
	t.Helper()
	for errno, n := range res.Errnos {
		switch errno {
		case syscall.ENOTCONN, syscall.ECONNABORTED:
		case syscall.EIO:
			if n > int64(workers) {
				t.Errorf("%d operations failed with EIO, more than the %d that can be in flight at the kill:\n%v", n, workers, res.Err())
			}
		default:
			t.Errorf("%d operations failed with %v (%d), not ENOTCONN, ECONNABORTED or EIO of a request in flight:\n%v", n, errno.Error(), int(errno), res.Err())
		}
	}
}

// checkRefusesLiveMount: mounting over a live mount fails with exit 1 and
// a hint, starts no second server, and leaves the first one serving.
func checkRefusesLiveMount(t *testing.T, ref, dir string, pid int) {
	t.Helper()
	_, stderr, code := runOcifs(t, nil, "mount", ref, dir)
	checkFailure(t, "mount over a live mount", code, 1, stderr, "is already a mount point", "hint: unmount it first: ocifs umount "+dir)
	if got := testenv.MountServer(dir); got != pid {
		t.Errorf("server for %s: pid %d, want %d", dir, got, pid)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Errorf("the mount after a refused mount over it: %v", err)
	}
}

// openSomeFile opens the first non-empty regular file of the tree.
func openSomeFile(t *testing.T, dir string, tree *overlay.Tree) *os.File {
	t.Helper()
	var p string
	tree.Walk(func(q string, n *overlay.Node) error {
		if p == "" && n.Type() == overlay.TypeRegular && n.Size() > 0 {
			p = q
		}
		return nil
	})
	f, err := os.Open(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// probeDead checks, each within probeTimeout, that a mount whose server
// died answers ENOTCONN: statfs, a read of an open file whose pages were
// dropped, a lookup of a new name.
func probeDead(t *testing.T, dir string, f *os.File) {
	t.Helper()
	probes := map[string]func() error{
		"statfs": func() error { var st unix.Statfs_t; return unix.Statfs(dir, &st) },
		"read of an open file": func() error {
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			_, err := f.ReadAt(make([]byte, 1), 0)
			return err
		},
		"lookup": func() error { _, err := os.Lstat(filepath.Join(dir, "never-looked-up")); return err },
	}
	for name, probe := range probes {
		start := time.Now()
		err := within(t, probeTimeout, name+" on the dead mount", probe)
		if !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("%s on the dead mount: %v, want ENOTCONN", name, err)
		}
		t.Logf("%s on the dead mount: %v after %v", name, err, time.Since(start).Round(time.Microsecond))
	}
}

// TestKillMountParent SIGKILLs `ocifs mount` (the command the user runs,
// not its server) while it pulls, once its server started, right when
// the mount appears, and halfway through a cold mount. Then: a
// mount left behind works and `ocifs umount` removes it (its server
// exits); no server runs without a mount; nothing bad is in the cache;
// and a rerun onto the same directory mounts the image correctly.
func TestKillMountParent(t *testing.T) {
	requireFUSEMount(t)
	f := newFaultImage(t, "mount-kill")
	full := timeColdMount(t, f.ref)
	moments := map[string]func(t *testing.T, dir string) <-chan string{
		"pulling": func(*testing.T, string) <-chan string {
			ch := make(chan string, 1)
			f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Stall, After: f.size / 2, Times: 1, Signal: ch})
			return ch
		},
		"server started": func(t *testing.T, dir string) <-chan string {
			return poll(t, "server started", func() bool { return testenv.MountServer(dir) != 0 })
		},
		"mounted": func(t *testing.T, dir string) <-chan string {
			return poll(t, "mounted", func() bool { return isMountPoint(dir) })
		},
	}
	for _, pc := range []int{50} {
		d := full * time.Duration(pc) / 100
		moments[fmt.Sprintf("at %d%% of a cold mount", pc)] = func(*testing.T, string) <-chan string {
			ch := make(chan string, 1)
			time.AfterFunc(d, func() { ch <- d.String() })
			return ch
		}
	}
	for name, moment := range moments {
		t.Run(name, func(t *testing.T) {
			f.proxy.Reset()
			dir := mountDir(t)
			what, code, kids := killAt(t, moment(t, dir), "mount", f.ref, dir)
			f.proxy.Reset()
			left := cleanUpAfterKill(t, dir, kids)
			t.Logf("killed at %s (exit %d); %s", what, code, left)
			checkBlobsVerify(t)
			mustOcifs(t, nil, "mount", f.ref, dir)
			tree, img := mergedTree(t, f.ref)
			requireNoDiff(t, "rerun mount (a) vs merged tree (b)", walkMount(t, dir), treeRecords(t, tree, img), exact)
			mustOcifs(t, nil, "cache", "verify")
			pid := serverPid(t, dir)
			mustOcifs(t, nil, "umount", dir)
			checkGone(t, dir, pid)
		})
	}
}

// timeColdMount times an uninterrupted `ocifs mount` into a fresh cache.
func timeColdMount(t *testing.T, ref string) time.Duration {
	t.Helper()
	dir := mountDir(t)
	env := []string{"OCIFS_CACHE_DIR=" + filepath.Join(t.TempDir(), "timing")}
	mustOcifs(t, env, "--version") // builds the binary outside the timing
	start := time.Now()
	mustOcifs(t, env, "mount", ref, dir)
	full := time.Since(start)
	mustOcifs(t, env, "umount", dir)
	t.Logf("a cold mount takes %v", full.Round(time.Millisecond))
	return full
}

// poll returns a channel that fires once cond holds (checked every
// millisecond, for at most cmdTimeout).
func poll(t *testing.T, what string, cond func() bool) <-chan string {
	ch := make(chan string, 1)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		deadline := time.Now().Add(cmdTimeout())
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			if cond() {
				ch <- what
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return ch
}

// killAt starts ocifs with args and SIGKILLs that one process when
// fired fires; it returns what fired ("finished" if ocifs ended first)
// and the exit code, and the children it had when killed.
func killAt(t *testing.T, fired <-chan string, args ...string) (string, int, map[int]string) {
	t.Helper()
	k := newKillable(t, nil, args...)
	k.start(t)
	what := k.killAt(t, fired, nil)
	return what, k.code, k.kids
}

// cleanUpAfterKill waits until a server left by a killed `ocifs mount`
// either mounted or gave up, then checks what is left: a mount must work
// and go away with `ocifs umount` (its server exiting); without a mount,
// no server may remain. kids are the children the killed ocifs had: one
// killed between fork and exec is not yet recognizable as a server. It
// says what it found.
func cleanUpAfterKill(t *testing.T, dir string, kids map[int]string) string {
	t.Helper()
	// Wait for a settled state: no server, or a server that serves its
	// mount. A server whose parent died before it reported mounts, fails
	// to report, unmounts and exits: it passes through "mounted" on the
	// way (CI once caught it there, then unmounted a moment later).
	// Every child of the killed ocifs must have exited or be that server.
	settled := func(pid int) bool {
		for kid := range kids {
			if kid != pid && alive(kid) {
				return false
			}
		}
		return pid == 0 || isMountPoint(dir) && serving(pid)
	}
	deadline := time.Now().Add(cmdTimeout())
	for time.Now().Before(deadline) && !settled(testenv.MountServer(dir)) {
		time.Sleep(20 * time.Millisecond)
	}
	pid := testenv.MountServer(dir)
	if !isMountPoint(dir) {
		if pid != 0 {
			t.Fatalf("a mount server (pid %d) runs without a mount", pid)
		}
		return "no mount left"
	}
	err := within(t, probeTimeout, "statfs of the mount left behind", func() error {
		var st unix.Statfs_t
		return unix.Statfs(dir, &st)
	})
	if err != nil {
		t.Errorf("the mount left behind does not work: %v", err)
	}
	mustOcifs(t, nil, "umount", dir)
	if pid != 0 {
		checkGone(t, dir, pid)
	}
	return fmt.Sprintf("a working mount was left (server %d); ocifs umount removed it", pid)
}

// serving reports whether mount server pid has reported to its parent
// and serves: only then does it open its log file in the cache
// (ocifs/logs/mount-*.log, as TestMountServerLogs finds it); a server that
// could not report never does.
func serving(pid int) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.Contains(l, "/ocifs/logs/mount-") {
			return true
		}
	}
	return false
}

// TestKillServerWhileMounting SIGKILLs `ocifs mount --foreground` (which
// serves its own mount) the moment its mount appears, over and over.
// However the kill lands, the process must be gone at once and leave at
// most a dead mount that `ocifs umount` removes. It fails if the process
// cannot exit: a thread of it waiting for its own mount's answer (go-fuse
// opened a file on the new mount and polled it, in Server.WaitMount) keeps
// the /dev/fuse descriptor open, so the kernel never aborts the
// connection and waits for that answer forever.
func TestKillServerWhileMounting(t *testing.T) {
	testenv.RequireRoot(t) // to abort a wedged connection through fusectl
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "kill-mounting")
	mustOcifs(t, nil, "pull", ref)
	attempts, budget := 0, 20*time.Second
	for start := time.Now(); time.Since(start) < budget && !t.Failed(); attempts++ {
		dir := mountDir(t)
		k := newKillable(t, nil, "mount", "--foreground", ref, dir)
		fired := make(chan string, 1)
		k.start(t)
		go func() {
			for deadline := time.Now().Add(cmdTimeout()); !isMountPoint(dir) && time.Now().Before(deadline); {
			}
			fired <- "mounted"
		}()
		k.killAt(t, fired, func() []string { return []string{dir} })
		if isMountPoint(dir) {
			mustOcifs(t, nil, "umount", dir)
		}
	}
	t.Logf("%d kills", attempts)
}
