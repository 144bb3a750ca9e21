package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ti "github.com/ocifs/ocifs/internal/testimage"
)

// TestMountRelativePaths mounts an oci: layout named by a relative path,
// with a relative cache directory: the background server runs in "/", so
// both must reach it resolved.
func TestMountRelativePaths(t *testing.T) {
	requireFUSEMount(t)
	work := t.TempDir()
	ti.WriteLayout(t, filepath.Join(work, "img"), "v1", ti.Image(t, rulesLayers()))
	if err := os.Mkdir(filepath.Join(work, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	unmountAtCleanup(t, filepath.Join(work, "mnt"))
	cmd := ocifsCommand(context.Background(), t, nil, "--cache-dir", "cache", "mount", "oci:img:v1", "mnt")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocifs mount with relative paths: %v\n%s", err, out)
	}
	defer exec.Command(ocifsBinary(t), "umount", filepath.Join(work, "mnt")).Run()
	got, err := os.ReadFile(filepath.Join(work, "mnt", "etc/motd"))
	if err != nil || string(got) != "new motd\n" {
		t.Errorf("reading through the mount: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(work, "cache", "index.json")); err != nil {
		t.Errorf("the relative cache dir was not used: %v", err)
	}
}
