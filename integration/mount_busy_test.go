package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/testregistry"
)

// Unmounting while the mount is in use: each way of holding it makes
// `ocifs umount` fail with exit 1, "busy" and a hint, without touching
// the mount; once the holder lets go, umount works, the server exits and
// the directory is an empty directory again. --lazy detaches at once, the
// holders keep reading, and the server exits when the last one leaves.

// holdFn makes dir busy and returns how to let go.
type holdFn func(t *testing.T, dir string) (release func())

var holders = []struct {
	name string
	hold holdFn
}{
	{"open file in another process", holdOpenFile},
	{"working directory of another process", holdCwd},
	{"mmap", holdMmap},
}

// holdOpenFile starts a process whose stdin is a file on the mount.
func holdOpenFile(t *testing.T, dir string) func() {
	f, err := os.Open(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child keeps its own copy
	return startSleeper(t, func(c *exec.Cmd) { c.Stdin = f })
}

// holdCwd starts a process whose working directory is on the mount.
func holdCwd(t *testing.T, dir string) func() {
	return startSleeper(t, func(c *exec.Cmd) { c.Dir = filepath.Join(dir, "d") })
}

func startSleeper(t *testing.T, setup func(*exec.Cmd)) func() {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	setup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var released bool
	release := func() {
		if !released {
			released = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	return release
}

// holdMmap maps a file of the mount into this process and closes the
// descriptor: only the mapping holds the mount.
func holdMmap(t *testing.T, dir string) func() {
	f, err := os.Open(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 6, unix.PROT_READ, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if string(m) != "world\n" {
		t.Fatalf("mapped %q", m)
	}
	var released bool
	release := func() {
		if !released {
			released = true
			if string(m) != "world\n" { // still readable through the mapping
				t.Errorf("mapping reads %q at release", m)
			}
			unix.Munmap(m)
		}
	}
	t.Cleanup(release)
	return release
}

// mountSmall mounts pushSmall's image on a fresh directory and returns
// the directory and the server's pid.
func mountSmall(t *testing.T, ref string) (string, int) {
	t.Helper()
	dir := mountDir(t)
	mustOcifs(t, nil, "mount", ref, dir)
	return dir, serverPid(t, dir)
}

// checkGone checks that dir is no longer mounted, that the server pid
// exits, and that dir is an empty directory again.
func checkGone(t *testing.T, dir string, pid int) {
	t.Helper()
	if isMountPoint(dir) {
		t.Errorf("%s is still mounted", dir)
	}
	if err := waitExit(pid, 10*time.Second); err != nil {
		t.Errorf("mount server: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) > 0 {
		t.Errorf("mount point after unmounting: %d entries, %v", len(ents), err)
	}
}

func TestUmountBusyHolders(t *testing.T) {
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "holders")
	for _, h := range holders {
		t.Run(h.name, func(t *testing.T) {
			dir, pid := mountSmall(t, ref)
			release := h.hold(t, dir)
			start := time.Now()
			_, stderr, code := runOcifs(t, nil, "umount", dir)
			t.Logf("busy umount answered in %v", time.Since(start).Round(time.Millisecond))
			checkFailure(t, "umount of a busy mount", code, 1, stderr, "busy", "hint: ", "fuser -vm", "ocifs umount --lazy")
			if !isMountPoint(dir) || !alive(pid) {
				t.Fatal("a failed umount took the mount or its server away")
			}
			if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "world\n" {
				t.Errorf("reading after a failed umount: %q, %v", b, err)
			}
			release()
			mustOcifs(t, nil, "umount", dir)
			checkGone(t, dir, pid)
		})
	}
}

func TestUmountLazyWithHolders(t *testing.T) {
	requireFUSEMount(t)
	reg := testregistry.Start(t)
	ref := pushSmall(t, reg, "lazy")
	dir, pid := mountSmall(t, ref)
	var releases []func()
	for _, h := range holders {
		releases = append(releases, h.hold(t, dir))
	}
	f, err := os.Open(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustOcifs(t, nil, "umount", "--lazy", dir)
	if isMountPoint(dir) {
		t.Fatal("still mounted after umount --lazy")
	}
	// The detached mount still serves those who hold it, from the server.
	err = within(t, 5*time.Second, "reading a detached mount", func() error {
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return err
		}
		b := make([]byte, 16)
		n, err := f.ReadAt(b, 0)
		if string(b[:n]) != "world\n" {
			t.Errorf("read %q (%v) through the detached mount", b[:n], err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatal("the server exited while the detached mount is in use")
	}
	for _, r := range releases {
		r()
	}
	f.Close()
	checkGone(t, dir, pid)
}
