package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernelCaching checks that repeated access costs no further requests:
// what the kernel learned once it keeps.
func TestKernelCaching(t *testing.T) {
	srv, mnt := mountImage(t, new(memImage).addLayer(
		dir("d"),
		file("d/a", "hello"),
		file("d/b", "world"),
		symlink("d/l", "a"),
	))
	p := func(s string) string { return filepath.Join(mnt, s) }
	twice := func(what string, fn func() error, check func(first, second Stats)) {
		t.Helper()
		s0 := srv.Stats()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		s1 := srv.Stats()
		if err := fn(); err != nil {
			t.Fatalf("%s again: %v", what, err)
		}
		s2 := srv.Stats()
		first, second := s1.Sub(s0), s2.Sub(s1)
		t.Logf("%s: first %v; second %v", what, first, second)
		if second.Total() != 0 {
			t.Errorf("%s again sent %v, want nothing", what, second)
		}
		if check != nil {
			check(first, second)
		}
	}
	twice("ls d", func() error { _, err := os.ReadDir(p("d")); return err }, nil)
	twice("lstat d/a after ls", func() error { _, err := os.Lstat(p("d/a")); return err },
		func(first, _ Stats) {
			if first.Lookup != 0 {
				t.Errorf("lstat after readdirplus sent %d lookups, want 0", first.Lookup)
			}
		})
	twice("lstat missing", func() error {
		if _, err := os.Lstat(p("d/missing")); !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}, nil)
	twice("read d/a", func() error { _, err := os.ReadFile(p("d/a")); return err }, nil)
	twice("readlink d/l", func() error { _, err := os.Readlink(p("d/l")); return err }, nil)
	twice("llistxattr d/b", func() error {
		_, err := unix.Llistxattr(p("d/b"), nil)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return err
	}, nil)
}
