package fusefs

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
)

// rootfsImage is a small root file system: nDirs directories of nFiles
// files each, with some symlinks, hardlinks, a sparse file and xattrs.
func rootfsImage(nDirs, nFiles int, withXattrs bool) *memImage {
	r := rand.New(rand.NewPCG(1, 2))
	var es []fentry
	for d := 0; d < nDirs; d++ {
		dn := fmt.Sprintf("usr/share/d%03d", d)
		es = append(es, dir(dn))
		for f := 0; f < nFiles; f++ {
			content := make([]byte, r.IntN(20000))
			for i := range content {
				content[i] = byte(r.IntN(256))
			}
			var opts []opt
			if withXattrs && f%10 == 0 {
				opts = append(opts, xattr("user.note", "n"))
			}
			es = append(es, fileBytes(fmt.Sprintf("%s/f%04d", dn, f), content, opts...))
		}
		es = append(es, symlink(dn+"/link", "f0000"))
		es = append(es, hardlink(dn+"/hard", dn+"/f0001"))
	}
	big := make([]byte, 3<<20)
	copy(big[1<<20:], "data in the middle")
	es = append(es, fileBytes("var/sparse", big, sparse([2]int64{1 << 20, 4096})))
	if withXattrs {
		es = append(es, file("usr/bin/ping", "ELF", xattr("security.capability",
			"\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")))
	}
	return new(memImage).addLayer(es...)
}

// runMkfs runs mkfs.ext4 -d over dir into a fresh image file.
func runMkfs(t testing.TB, dir string) {
	t.Helper()
	mkfs := testenv.RequireTool(t, "mkfs.ext4", "apt-get install -y e2fsprogs")
	img := filepath.Join(t.TempDir(), "out.ext4")
	cmd := exec.Command(mkfs, "-q", "-F", "-d", dir, "-b", "4096", img, "256M")
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	fsck := testenv.RequireTool(t, "e2fsck", "apt-get install -y e2fsprogs")
	if out, err := exec.Command(fsck, "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
}

// TestMkfsRoundTrips runs a real mkfs.ext4 -d over a mount and checks the
// requests it cost against what the kernel cannot avoid: one READDIRPLUS
// (or a few, for big directories) per directory, one LISTXATTR per path
// when the image has xattrs, reads for the data, and nothing per file
// beyond that.
func TestMkfsRoundTrips(t *testing.T) {
	for _, c := range []struct {
		name   string
		tune   tuning
		xattrs bool
	}{
		{"naive", naiveTuning, false},
		{"naive,xattrs", naiveTuning, true},
		{"fast", fastTuning, false},
		{"fast,xattrs", fastTuning, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := rootfsImage(20, 100, c.xattrs)
			tree := m.merge(t)
			srv, mnt := mountTuned(t, tree, m, Options{}, c.tune)
			before := srv.Stats()
			runMkfs(t, mnt)
			s := srv.Stats().Sub(before)
			paths := countPaths(tree)
			t.Logf("%d paths, %d inodes: %v", paths, tree.Len(), s)
			perPath := float64(s.Total()-s.Read) / float64(paths)
			t.Logf("non-read requests per path: %.2f", perPath)
			if c.tune != fastTuning {
				return
			}
			if s.Lookup > 2 {
				t.Errorf("mkfs sent %d LOOKUPs; readdirplus should have answered them", s.Lookup)
			}
			if s.Open > 1 || s.Flush > 1 || s.Lseek > 1 || s.OpenDir > 1 || s.GetAttr > 2 {
				t.Errorf("requests the kernel should stop sending: %v", s)
			}
		})
	}
}

func countPaths(t *overlay.Tree) int {
	n := 0
	t.Walk(func(string, *overlay.Node) error { n++; return nil })
	return n
}

var _ = os.Getpid
