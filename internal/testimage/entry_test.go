package testimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/testenv"
)

func sampleLayer() []byte {
	return Layer(
		Dir("etc", Mode(0o755)),
		File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", Mode(0o644), Owner(0, 0)),
		Dir("bin"),
		File("bin/busybox", "#!/bin/sh\necho hi\n", Mode(0o4755)),
		Symlink("bin/sh", "busybox"),
		Hardlink("bin/ls", "bin/busybox"),
		Whiteout("usr/share/doc"),
		Opaque("var/cache"),
		CharDev("dev/null", 1, 3),
		BlockDev("dev/loop0", 7, 0),
		Fifo("run/initctl", Owner(1000, 100)),
		File("usr/bin/ping", "ELF", Mode(0o755), Xattr("security.capability", CapNetBindService()), Xattr("user.note", []byte("a\x00b"))),
	)
}

// TestTarListing checks the fixture language against GNU tar's reading.
func TestTarListing(t *testing.T) {
	tarBin := testenv.RequireTool(t, "tar", "apt-get install -y tar")
	f := filepath.Join(t.TempDir(), "l.tar")
	if err := os.WriteFile(f, sampleLayer(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tarBin, "--numeric-owner", "-tvf", f).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, out)
	}
	want := []string{
		"drwxr-xr-x 0/0 0 2024-01-02 03:04 etc/",
		"-rw-r--r-- 0/0 26 2024-01-02 03:04 etc/passwd",
		"drwxr-xr-x 0/0 0 2024-01-02 03:04 bin/",
		"-rwsr-xr-x 0/0 18 2024-01-02 03:04 bin/busybox",
		"lrwxrwxrwx 0/0 0 2024-01-02 03:04 bin/sh -> busybox",
		"hrw-r--r-- 0/0 0 2024-01-02 03:04 bin/ls link to bin/busybox",
		"-rw-r--r-- 0/0 0 2024-01-02 03:04 usr/share/.wh.doc",
		"-rw-r--r-- 0/0 0 2024-01-02 03:04 var/cache/.wh..wh..opq",
		"crw-rw-rw- 0/0 1,3 2024-01-02 03:04 dev/null",
		"brw-rw---- 0/0 7,0 2024-01-02 03:04 dev/loop0",
		"prw-r--r-- 1000/100 0 2024-01-02 03:04 run/initctl",
		"-rwxr-xr-x 0/0 3 2024-01-02 03:04 usr/bin/ping",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tar -tvf listing:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestXattrsSurvive extracts with GNU tar and reads the user.* xattr back,
// and checks the binary security.capability record byte for byte.
func TestXattrsSurvive(t *testing.T) {
	tr := tar.NewReader(bytes.NewReader(sampleLayer()))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "usr/bin/ping" {
			found = true
			if got := h.PAXRecords["SCHILY.xattr.security.capability"]; got != string(CapNetBindService()) {
				t.Fatalf("security.capability = %x", got)
			}
		}
	}
	if !found {
		t.Fatal("usr/bin/ping not in layer")
	}
	tarBin := testenv.RequireTool(t, "tar", "apt-get install -y tar")
	dir := t.TempDir()
	layer := Layer(Dir("d"), File("d/f", "x", Xattr("user.note", []byte("a\x00b"))))
	cmd := exec.Command(tarBin, "--xattrs", "--xattrs-include=user.*", "-xf", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(layer)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(dir, "d/f"), "user.note", buf)
	if err != nil {
		t.Fatalf("reading user.note after tar -x: %v", err)
	}
	if string(buf[:n]) != "a\x00b" {
		t.Fatalf("user.note = %q", buf[:n])
	}
}

func TestLayerDeterministic(t *testing.T) {
	if !bytes.Equal(sampleLayer(), sampleLayer()) {
		t.Fatal("two writes of the same layer differ")
	}
}
