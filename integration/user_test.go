package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

// Nobody is the unprivileged user tests run ocifs as.
const (
	nobodyUID = 65534
	nobodyGID = 65534
)

// userDir returns a fresh directory owned by uid:gid that the user can
// reach (t.TempDir's parents are 0700 root), removed when the test ends.
// Needs root.
func userDir(t testing.TB, uid, gid int) string {
	t.Helper()
	testenv.RequireRoot(t)
	d, err := os.MkdirTemp("", "ocifs-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// runOcifsAs is runOcifs as user uid:gid (root only), with HOME and the
// cache directory in a userDir of that user unless env overrides them.
// Paths given in args must be reachable by that user: use userDir.
func runOcifsAs(t testing.TB, uid, gid int, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	home := userDir(t, uid, gid)
	cache := filepath.Join(home, "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cache, uid, gid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	base := []string{"HOME=" + home, "XDG_CACHE_HOME=" + home, "OCIFS_CACHE_DIR=" + cache}
	cmd := ocifsCommand(ctx, t, append(base, env...), args...)
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ocifs %s as %d: timed out after %v\nstderr:\n%s", strings.Join(args, " "), uid, cmdTimeout(), errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running ocifs %s as %d: %v", strings.Join(args, " "), uid, err)
	}
	return out.String(), errb.String(), code
}

func TestRunAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	stdout, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, nil, "--version")
	if code != 0 || !strings.Contains(stdout+stderr, "ocifs") {
		t.Fatalf("ocifs --version as nobody: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestUnwritableCache: a cache directory the user cannot create gives
// exit 1 and a hint to choose another, for every command that opens it.
func TestUnwritableCache(t *testing.T) {
	testenv.RequireRoot(t)
	locked := filepath.Join(userDir(t, nobodyUID, nobodyGID), "locked")
	if err := os.Mkdir(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	env := []string{"OCIFS_CACHE_DIR=" + filepath.Join(locked, "cache")}
	for _, args := range [][]string{{"cache", "ls"}, {"pull", "oci:/nowhere"}} {
		_, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, env, args...)
		checkFailure(t, strings.Join(args, " ")+" with an unwritable cache", code, 1, stderr, "permission denied",
			"hint: choose a cache directory you can write with --cache-dir")
	}
}
