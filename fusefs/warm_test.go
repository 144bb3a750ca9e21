package fusefs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWarm checks that after WarmWalk, walking the mount as mkfs.ext4 -d does
// (list each directory, lstat and readlink its entries) sends nothing.
func TestWarm(t *testing.T) {
	srv, mnt := mountImage(t, new(memImage).addLayer(
		dir("a"), dir("a/b"), dir("a/b/c"),
		file("a/f", "x"), symlink("a/l", "f"),
		file("a/b/c/g", "y"), symlink("a/b/c/m", "../../f"),
		dir("z"), symlink("z/n", "/a"),
	))
	if err := WarmWalk(context.Background(), mnt); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats()
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type() == fs.ModeSymlink {
			_, err = os.Readlink(p)
		}
		_, ierr := d.Info()
		return errors.Join(err, ierr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := srv.Stats().Sub(before); s.Total() != 0 {
		t.Errorf("walking after WarmWalk sent %v, want nothing", s)
	}
}

func TestWarmStops(t *testing.T) {
	m := wideImage(50, 10)
	srv, mnt := mountTree(t, m.merge(t), m, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WarmWalk(ctx, mnt); !errors.Is(err, context.Canceled) {
		t.Errorf("WarmWalk with a cancelled context returned %v, want context.Canceled", err)
	}
	if s := srv.Stats(); s.ReadDirPlus != 0 {
		t.Errorf("a cancelled WarmWalk listed directories: %v", s)
	}
}
