package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

func pushSmall(t *testing.T, reg *testregistry.Registry, name string) string {
	t.Helper()
	ref := reg.Repo(name) + ":v1"
	ti.Push(t, ti.Image(t, [][]byte{ti.Layer(ti.File("hello", "world\n"), ti.Dir("d"))}), ref)
	return ref
}

// TestMountErrors checks messages and exit codes of bad mounts and umounts.
func TestMountErrors(t *testing.T) {
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "errors")
	base := t.TempDir()
	full := filepath.Join(base, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	os.WriteFile(filepath.Join(base, "file"), nil, 0o644)
	empty := mountDir(t)
	live := mountImage(t, ref)

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mount", ref, filepath.Join(base, "missing")}, 2, "does not exist"},
		{[]string{"mount", ref, full}, 2, "is not empty"},
		{[]string{"mount", ref, filepath.Join(base, "file")}, 2, "is not a directory"},
		{[]string{"mount", ref, live}, 1, "already a mount point"},
		{[]string{"mount", ref}, 2, "mount takes REF DIR"},
		{[]string{"mount", "--layer", "5", ref, empty}, 2, "the image has 1 layers"},
		{[]string{"mount", "--layers", "1", "--layer", "0", ref, empty}, 2, "exclude each other"},
		{[]string{"mount", reg.Repo("nonexistent") + ":v1", empty}, 3, "manifest unknown"},
		{[]string{"mount", "Bad Ref!", empty}, 3, ""},
		{[]string{"umount", empty}, 2, "is not a mount point"},
		{[]string{"umount", filepath.Join(base, "missing")}, 2, ""},
		{[]string{"umount", "/proc"}, 2, "is not a FUSE mount"},
		{[]string{"umount"}, 2, "umount takes DIR"},
	}
	for _, c := range cases {
		_, stderr, code := runOcifs(t, nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.HasPrefix(stderr, "ocifs: ") {
			t.Errorf("ocifs %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
	if isMountPoint(empty) {
		t.Error("a failed mount left a mount behind")
	}
}

// TestUmountKilledServer kills a background server with SIGKILL: the
// mount answers ENOTCONN, mounting over it is refused with a hint, ocifs
// umount cleans it up, and the directory can be mounted again.
func TestUmountKilledServer(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "killed")
	dir := mountImage(t, ref)
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "world\n" {
		t.Fatalf("reading through the mount: %q, %v", b, err)
	}
	killAndWait(t, serverPid(t, dir))
	if _, err := os.ReadDir(filepath.Join(dir, "d")); err == nil {
		t.Log("listing still served from the kernel's cache")
	}
	_, stderr, code := runOcifs(t, nil, "mount", ref, dir)
	if code != 1 || !strings.Contains(stderr, "server is gone") || !strings.Contains(stderr, "hint: clean it up with: ocifs umount") {
		t.Errorf("mount over a dead mount: exit %d, %q", code, stderr)
	}
	mustOcifs(t, nil, "umount", dir)
	if isMountPoint(dir) {
		t.Fatal("still mounted after ocifs umount")
	}
	mustOcifs(t, nil, "mount", ref, dir)
	if _, err := os.Stat(filepath.Join(dir, "hello")); err != nil {
		t.Errorf("after mounting again: %v", err)
	}
}

// TestUmountBusy keeps a file open: umount fails with exit 1 and a hint,
// --lazy detaches anyway.
func TestUmountBusy(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "busy")
	dir := mountImage(t, ref)
	f, err := os.Open(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, stderr, code := runOcifs(t, nil, "umount", dir)
	if code != 1 || !strings.Contains(stderr, "busy") || !strings.Contains(stderr, "--lazy") {
		t.Errorf("umount of a busy mount: exit %d, %q", code, stderr)
	}
	mustOcifs(t, nil, "umount", "--lazy", dir)
	if isMountPoint(dir) {
		t.Error("still mounted after umount --lazy")
	}
}

// TestMountForeground runs mount --foreground, then interrupts it as
// Ctrl-C would: it unmounts and exits 0.
func TestMountForeground(t *testing.T) {
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "fg")
	dir := mountDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, nil, "mount", "--foreground", ref, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !isMountPoint(dir) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "world\n" {
		t.Errorf("reading through the foreground mount: %q, %v", b, err)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err != nil {
		t.Errorf("mount --foreground after Ctrl-C: %v\n%s", err, stderr.String())
	}
	if isMountPoint(dir) {
		t.Error("still mounted after Ctrl-C")
	}
}

// TestMountWithoutFUSE hides /dev/fuse in a private mount namespace:
// exit 4 with a hint, before anything is pulled.
func TestMountWithoutFUSE(t *testing.T) {
	testenv.RequireRoot(t)
	unshare := testenv.RequireTool(t, "unshare", "apt-get install -y util-linux")
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "nofuse")
	dir := mountDir(t)
	script := `mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec "$@"`
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		ocifsBinary(t), "mount", ref, dir)
	cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+cacheDir(t))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "/dev/fuse") || !strings.Contains(string(out), "hint: ") {
		t.Errorf("mount without /dev/fuse: %v\n%s", err, out)
	}
	if blobs, _ := os.ReadDir(filepath.Join(cacheDir(t), "blobs", "sha256")); len(blobs) > 0 {
		t.Errorf("%d blobs pulled before the mount was refused", len(blobs))
	}
}
