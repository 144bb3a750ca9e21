package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
)

func wantProblem(t *testing.T, err error, problem string) {
	t.Helper()
	var me *MountpointError
	if !errors.As(err, &me) || me.Problem != problem {
		t.Errorf("error %v, want a MountpointError %q", err, problem)
	}
}

func TestCheckMountpoint(t *testing.T) {
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	full := filepath.Join(base, "full")
	os.Mkdir(empty, 0o755)
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	os.WriteFile(filepath.Join(base, "file"), nil, 0o644)
	os.Symlink("empty", filepath.Join(base, "link"))

	if err := CheckMountpoint(empty); err != nil {
		t.Errorf("empty dir: %v", err)
	}
	if err := CheckMountpoint(filepath.Join(base, "link")); err != nil {
		t.Errorf("symlink to an empty dir: %v", err)
	}
	wantProblem(t, CheckMountpoint(filepath.Join(base, "missing")), ProblemMissing)
	wantProblem(t, CheckMountpoint(filepath.Join(base, "no/such/parent")), ProblemMissing)
	wantProblem(t, CheckMountpoint(full), ProblemNotEmpty)
	wantProblem(t, CheckMountpoint(filepath.Join(base, "file")), ProblemNotDir)
	if _, err := Mount(filepath.Join(base, "missing"), helperTree(t), nil, Options{}); err == nil {
		t.Error("Mount on a missing directory succeeded")
	}
}

func helperTree(t *testing.T) *overlay.Tree {
	return helperImage().merge(t)
}

func TestMountOverMount(t *testing.T) {
	_, mnt := mountImage(t, helperImage())
	wantProblem(t, CheckMountpoint(mnt), ProblemMounted)
	if _, err := Mount(mnt, helperTree(t), nil, Options{}); err == nil {
		t.Error("Mount over a live mount succeeded")
	}
}

// TestUnmountBusy keeps a file open across Unmount: it fails with ErrBusy
// after retrying, and succeeds once the file is closed.
func TestUnmountBusy(t *testing.T) {
	old := busyRetry
	busyRetry = 200 * time.Millisecond
	defer func() { busyRetry = old }()
	srv, mnt := mountImage(t, helperImage())
	f, err := os.Open(filepath.Join(mnt, "public"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Unmount(); !errors.Is(err, ErrBusy) {
		t.Errorf("Unmount with an open file: %v, want ErrBusy", err)
	}
	if err := Unmount(mnt); !errors.Is(err, ErrBusy) {
		t.Errorf("Unmount(dir) with an open file: %v, want ErrBusy", err)
	}
	f.Close()
	if err := srv.Unmount(); err != nil {
		t.Errorf("Unmount after closing: %v", err)
	}
	srv.Wait()
}

// TestUnmountFromOutside unmounts with the package function, as `ocifs
// umount` does: the server's Wait returns and its Unmount is a no-op.
func TestUnmountFromOutside(t *testing.T) {
	srv, mnt := mountImage(t, helperImage())
	if err := Unmount(mnt); err != nil {
		t.Fatalf("Unmount(dir): %v", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after an outside unmount")
	}
	if err := srv.Unmount(); err != nil {
		t.Errorf("Unmount after an outside unmount: %v", err)
	}
	wantProblem(t, Unmount(mnt), ProblemNotMounted)
	wantProblem(t, Unmount(t.TempDir()), ProblemNotMounted)
	wantProblem(t, Unmount("/proc"), ProblemNotFUSE+" (type proc)")
}

// TestUnmountDeadServer kills a server process: the mount answers ENOTCONN,
// a new mount refuses it, and Unmount(dir) cleans it up.
func TestUnmountDeadServer(t *testing.T) {
	h := startHelper(t, 0, false)
	if _, err := os.ReadDir(h.dir); err != nil { // cached from now on
		t.Fatal(err)
	}
	h.kill(t)
	if _, err := os.ReadFile(filepath.Join(h.dir, "public")); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("reading from a dead mount: %v, want ENOTCONN", err)
	}
	wantProblem(t, CheckMountpoint(h.dir), ProblemDeadMount)
	if err := Unmount(h.dir); err != nil {
		t.Fatalf("Unmount of a dead mount: %v", err)
	}
	if err := CheckMountpoint(h.dir); err != nil {
		t.Errorf("after Unmount: %v", err)
	}
}

// TestUnprivileged mounts as uid 65534 through fusermount3: that user
// reads a 0600 root file and enters a 0700 root directory (no permission
// checks), root cannot enter the private mount, and the user can unmount
// it after its server was killed.
func TestUnprivileged(t *testing.T) {
	testenv.RequireTool(t, "fusermount3", "apt-get install -y fuse3")
	const nobody = 65534
	h := startHelper(t, nobody, false)
	out, err := runAs(nobody, "cat", filepath.Join(h.dir, "private/secret"))
	if err != nil || out != "root only" {
		t.Errorf("uid %d reading a 0600 root file: %q, %v", nobody, out, err)
	}
	if out, err := runAs(nobody, "ls", filepath.Join(h.dir, "private")); err != nil || strings.TrimSpace(out) != "secret" {
		t.Errorf("uid %d listing a 0700 root dir: %q, %v", nobody, out, err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "public")); !errors.Is(err, os.ErrPermission) {
		t.Errorf("root entering a private mount of uid %d: %v, want EACCES", nobody, err)
	}
	if line := mountLine(t, h.dir); !strings.Contains(line, "ro,") || !strings.Contains(line, "nosuid") || !strings.Contains(line, "nodev") {
		t.Errorf("mount options: %s", line)
	}
	h.kill(t)
	if out, err := h.unmountAs(nobody); err != nil {
		t.Fatalf("Unmount as uid %d of a dead mount: %v\n%s", nobody, err, out)
	}
	if _, ok, _ := findMount(h.dir); ok {
		t.Error("still mounted")
	}
}

// TestAllowOther checks that --allow-other opens the mount to others and
// then enforces the image's modes.
func TestAllowOther(t *testing.T) {
	const nobody = 65534
	h := startHelper(t, 0, true)
	if out, err := runAs(nobody, "cat", filepath.Join(h.dir, "public")); err != nil || out != "everyone" {
		t.Errorf("uid %d reading a 0644 file: %q, %v", nobody, out, err)
	}
	if out, err := runAs(nobody, "cat", filepath.Join(h.dir, "private/secret")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid %d reading a 0600 root file with default_permissions: %q, %v", nobody, out, err)
	}
}

func mountLine(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if m, ok := parseMountinfo(l); ok && m.Point == dir {
			return l
		}
	}
	t.Fatalf("%s not in the mount table", dir)
	return ""
}
