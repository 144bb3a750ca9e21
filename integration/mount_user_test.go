package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// describeTree lists every path under dir with type, mode, owner, size,
// link count, inode, symlink target, content hash and xattrs, running the
// tools as uid (a private FUSE mount is only open to the user who made it).
func describeTree(t *testing.T, uid int, dir string) string {
	t.Helper()
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v as uid %d in %s: %v", name, args, uid, dir, err)
		}
		return string(out)
	}
	getfattr := testenv.RequireTool(t, "getfattr", "apt-get install -y attr")
	return run("find", ".", "-printf", "%p %y %m %U:%G %s %n %i %l\n") +
		run("find", ".", "-type", "f", "-exec", "sha256sum", "{}", "+") +
		run(getfattr, "-R", "-h", "-d", "-m", "-", "-e", "hex", ".")
}

// TestMountAsNobody mounts as uid 65534 through fusermount3 and checks the
// user sees exactly what root's mount shows, reads a 0640 root file it has
// no permission for in the image, and can clean up after its server is
// killed.
func TestMountAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "fusermount3", "apt-get install -y fuse3")
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("nobody") + ":v1"
	ti.Push(t, ti.Image(t, rulesLayers()), ref)

	home := userDir(t, nobodyUID, nobodyGID)
	dir := filepath.Join(home, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, nobodyUID, nobodyGID)
	unmountAtCleanup(t, dir)
	if _, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, nil, "mount", ref, dir); code != 0 {
		t.Fatalf("ocifs mount as nobody: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(mountinfoLine(t, dir), "fuse.ocifs") {
		t.Errorf("not an ocifs mount: %s", mountinfoLine(t, dir))
	}
	got := describeTree(t, nobodyUID, dir)
	want := describeTree(t, 0, mountImage(t, ref))
	if got != want {
		t.Errorf("nobody's mount differs from root's:\n--- nobody\n%s\n--- root\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err == nil {
		t.Error("root entered nobody's private mount")
	}

	killAndWait(t, serverPid(t, dir))
	if _, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, nil, "mount", ref, dir); code != 1 || !strings.Contains(stderr, "server is gone") {
		t.Errorf("mount over a dead mount: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runOcifsAs(t, nobodyUID, nobodyGID, nil, "umount", dir); code != 0 {
		t.Fatalf("ocifs umount as nobody after its server was killed: exit %d\n%s", code, stderr)
	}
	if isMountPoint(dir) {
		t.Error("still mounted after ocifs umount")
	}
}

func mountinfoLine(t *testing.T, dir string) string {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return l
		}
	}
	return ""
}

// TestMountAllowOther mounts as root with --allow-other: another user gets
// in, and the image's permissions apply to them.
func TestMountAllowOther(t *testing.T) {
	testenv.RequireRoot(t)
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := reg.Repo("allow-other") + ":v1"
	ti.Push(t, ti.Image(t, rulesLayers()), ref)
	dir := filepath.Join(userDir(t, 0, 0), "mnt") // reachable by other users
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unmountAtCleanup(t, dir)
	mustOcifs(t, nil, "mount", "--allow-other", ref, dir)
	defer mustOcifs(t, nil, "umount", dir)
	for _, c := range []struct {
		path string
		ok   bool
	}{{"etc/passwd", true}, {"etc/shadow", false}, {"home/alice/notes", false}} {
		cmd := exec.Command("cat", filepath.Join(dir, c.path))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID}}
		out, err := cmd.CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("uid %d reading %s: %v %s (want allowed: %v)", nobodyUID, c.path, err, out, c.ok)
		}
	}
	if line := mountinfoLine(t, dir); !strings.Contains(line, "allow_other") || !strings.Contains(line, "default_permissions") {
		t.Errorf("mount options: %s", line)
	}
}
