package fusefs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
)

// The tests that need a mount served by another process (one that can be
// killed, or that runs as another user) re-run the test binary as that
// server: with helperEnv set, TestMain mounts helperImage at the directory
// in helperEnv, prints "ready" (or the error) on stdout, and serves until
// stdin closes.
// With unmountEnv set, it runs Unmount on that directory instead.
const (
	helperEnv  = "OCIFS_FUSEFS_HELPER_MOUNT"
	unmountEnv = "OCIFS_FUSEFS_HELPER_UNMOUNT"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(serveHelper(dir))
	}
	if dir := os.Getenv(unmountEnv); dir != "" {
		if err := Unmount(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperImage() *memImage {
	return new(memImage).addLayer(
		dir("private", perm(0o700)),
		file("private/secret", "root only", perm(0o600)),
		file("public", "everyone", perm(0o644)),
	)
}

func serveHelper(dir string) int {
	m := helperImage()
	tree, err := overlay.Merge(m.layers)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	opts := Options{AllowOther: os.Getenv(helperEnv+"_ALLOW_OTHER") == "1"}
	srv, err := Mount(dir, tree, m, opts)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	if err := srv.Unmount(); err != nil {
		fmt.Fprintf(os.Stderr, "unmount: %v\n", err)
		return 1
	}
	return 0
}

// helper is a mount server in another process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string
}

// startHelper starts a server process on a fresh directory, as uid (when
// not 0), and waits until it mounted.
func startHelper(t *testing.T, uid int, allowOther bool) *helper {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	bin, dir := helperFiles(t, uid)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	if allowOther {
		cmd.Env = append(cmd.Env, helperEnv+"_ALLOW_OTHER=1")
	}
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the server process: %v", err)
	}
	h := &helper{cmd: cmd, stdin: stdin, dir: dir}
	t.Cleanup(h.stop)
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("server process: %q", line)
	}
	return h
}

// helperFiles copies the test binary where uid can run it and makes an
// empty mount point uid owns.
func helperFiles(t *testing.T, uid int) (bin, dir string) {
	t.Helper()
	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(base, "fusefs.test")
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

func copyFile(src, dst string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, perm)
}

// stop asks the server to unmount and exit (no-op once it is gone).
func (h *helper) stop() {
	h.stdin.Close()
	h.cmd.Wait()
	if _, ok, _ := findMount(h.dir); ok {
		UnmountLazy(h.dir)
	}
}

// kill ends the server with SIGKILL, leaving its mount behind.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
}

// unmountAs runs Unmount(dir) in a process of uid.
func (h *helper) unmountAs(uid int) (string, error) {
	bin := filepath.Join(filepath.Dir(h.dir), "fusefs.test")
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), unmountEnv+"="+h.dir)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runAs runs a command as uid and returns its combined output.
func runAs(uid int, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
