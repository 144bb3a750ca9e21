// Package integration runs the real ocifs binary against a real registry,
// real FUSE mounts and real mkfs.ext4/e2fsck.
//
// The binary is built once per test run, on first use, from ./cmd/ocifs
// (with -race when this test binary has the race detector, unless
// OCIFS_TEST_BINARY_RACE=0), or taken from OCIFS_TEST_BINARY when set.
// Run every command through runOcifs (or ocifsCommand for background
// processes): it gives each test its own cache directory and a timeout.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	workDir string // removed after all tests

	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := func() int {
		d, err := os.MkdirTemp("", "ocifs-integration-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "creating work dir: %v\n", err)
			return 1
		}
		workDir = d
		defer os.RemoveAll(d)
		// The binary is also run as other users (runOcifsAs).
		if err := os.Chmod(d, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "opening work dir: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// ocifsBinary returns the path of the ocifs binary under test, building it
// on first use.
func ocifsBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = buildOcifs() })
	if buildErr != nil {
		t.Fatalf("building ocifs: %v", buildErr)
	}
	return binPath
}

func buildOcifs() (string, error) {
	if p := os.Getenv("OCIFS_TEST_BINARY"); p != "" {
		return filepath.Abs(p)
	}
	out := filepath.Join(workDir, "ocifs")
	args := []string{"build", "-o", out}
	if raceEnabled && os.Getenv("OCIFS_TEST_BINARY_RACE") != "0" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/ocifs/ocifs/cmd/ocifs")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // module root, from the package directory go test runs in
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}

// TestHarness checks runOcifs itself: output capture, exit codes, the
// per-test cache directory.
func TestHarness(t *testing.T) {
	stdout, stderr, code := runOcifs(t, nil, "--version")
	if code != 0 || !strings.Contains(stdout+stderr, "ocifs") {
		t.Fatalf("ocifs --version: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = runOcifs(t, nil, "--no-such-flag")
	if code != 2 || !strings.HasPrefix(stderr, "ocifs: ") {
		t.Fatalf("ocifs --no-such-flag: code %d (want 2), stderr %q", code, stderr)
	}
	if d := cacheDir(t); d != cacheDir(t) || !strings.HasPrefix(d, os.TempDir()) {
		t.Fatalf("cacheDir not stable per test: %s", d)
	}
}
