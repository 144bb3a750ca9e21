package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
)

// cmdTimeout bounds one ocifs run; OCIFS_TEST_CMD_TIMEOUT (a Go duration)
// overrides it.
func cmdTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("OCIFS_TEST_CMD_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Minute
}

var (
	cacheDirsMu sync.Mutex
	cacheDirs   = map[string]string{} // test name → cache dir
)

// cacheDir returns this test's ocifs cache directory (the same on every
// call within one test, also from the test's goroutines), removed when
// the test ends.
func cacheDir(t testing.TB) string {
	t.Helper()
	cacheDirsMu.Lock()
	defer cacheDirsMu.Unlock()
	if d, ok := cacheDirs[t.Name()]; ok {
		return d
	}
	d := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	cacheDirs[t.Name()] = d
	t.Cleanup(func() {
		cacheDirsMu.Lock()
		delete(cacheDirs, t.Name())
		cacheDirsMu.Unlock()
	})
	return d
}

// ocifsCommand prepares the ocifs binary with args. env entries
// ("K=V") are added to the process environment, after
// OCIFS_CACHE_DIR=cacheDir(t), so they may override it. The command runs
// in its own process group; the caller starts and waits for it.
func ocifsCommand(ctx context.Context, t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, ocifsBinary(t), args...)
	cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+cacheDir(t))
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runOcifs runs ocifs with args and returns its output and exit code.
// It fails the test if the command cannot be started or outlives
// cmdTimeout (then the whole process group is killed).
func runOcifs(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ocifs %s: timed out after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), cmdTimeout(), out.String(), errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running ocifs %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// mustOcifs is runOcifs for commands that must succeed; it returns stdout.
func mustOcifs(t testing.TB, env []string, args ...string) string {
	t.Helper()
	stdout, stderr, code := runOcifs(t, env, args...)
	if code != 0 {
		t.Fatalf("ocifs %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// unmountAtCleanup makes sure a FUSE mount at dir is gone when the test
// ends, even if the test failed before unmounting: a leaked mount would
// break t.TempDir's removal and later tests.
func unmountAtCleanup(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		if !isMountPoint(dir) {
			return
		}
		if p, err := exec.LookPath("fusermount3"); err == nil {
			_ = exec.Command(p, "-u", "-z", dir).Run()
		}
		if isMountPoint(dir) {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// isMountPoint reports whether dir is listed in /proc/self/mountinfo.
func isMountPoint(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == abs {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// requireFUSEMount is the usual guard for a test that mounts: root or
// fusermount3, and /dev/fuse.
func requireFUSEMount(t testing.TB) {
	t.Helper()
	testenv.RequireFUSE(t)
	if os.Geteuid() != 0 {
		testenv.RequireTool(t, "fusermount3", "apt-get install -y fuse3")
	}
}
