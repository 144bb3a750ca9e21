package fusefs

import (
	"os"
	"testing"
	"testing/fstest"
)

// TestFSTest runs testing/fstest over the mount: listings, lookups, stats
// and reads must agree with one another (ReadDir against Stat, Open+Read
// against ReadFile, Seek and ReadAt, and so on).
func TestFSTest(t *testing.T) {
	m := rootfsImage(5, 40, true)
	m.addLayer(
		dir("etc"),
		file("etc/hostname", "ocifs\n"),
		symlink("etc/alias", "hostname"),
		hardlink("etc/hostname.bak", "etc/hostname"),
		dir("empty"),
	)
	_, mnt := mountImage(t, m)
	if err := fstest.TestFS(os.DirFS(mnt), "etc/hostname", "etc/alias", "etc/hostname.bak", "empty",
		"usr/share/d000/f0000", "var/sparse"); err != nil {
		t.Fatal(err)
	}
}
