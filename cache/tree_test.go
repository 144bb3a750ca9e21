package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestTreeIsSavedAndReused checks that a merged tree is saved, that a
// later Tree call uses it without the indexes, and that a damaged one is
// merged again and replaced.
func TestTreeIsSavedAndReused(t *testing.T) {
	addr, _ := startRegistry(t)
	img, _ := threeLayers(t)
	ref := addr + "/tree:v1"
	push(t, ref, img)
	s := openStore(t, "")
	ctx := context.Background()
	ci, err := s.Pull(ctx, ref, PullOptions{})
	must(t, err)
	defer ci.Close()

	first, err := ci.Tree(ctx, 0)
	must(t, err)
	saved := s.treePath(ci.Layers)
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("merged tree not saved: %v", err)
	}
	// Without the indexes, only the saved tree can answer.
	idx, err := filepath.Glob(filepath.Join(s.Dir(), indexesDir, "sha256", "*"))
	must(t, err)
	for _, f := range idx {
		must(t, os.Remove(f))
	}
	again, err := ci.Tree(ctx, 0)
	must(t, err)
	if again.Len() != first.Len() || again.Get("etc/motd2").Nlink() != 2 {
		t.Errorf("saved tree differs: %d inodes, want %d", again.Len(), first.Len())
	}

	// Two layers make another tree, under another name.
	two, err := s.Pull(ctx, ref, PullOptions{}) // rebuilds the removed indexes
	must(t, err)
	defer two.Close()
	t2, err := two.Tree(ctx, 2)
	must(t, err)
	if t2.Get("etc/motd") != nil || s.treePath(two.Layers[:2]) == saved {
		t.Error("the tree of 2 layers must not contain layer 3 nor share its file")
	}

	// A damaged file is merged again and replaced.
	data, err := os.ReadFile(saved)
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.WriteFile(saved, data, 0o644))
	fixed, err := two.Tree(ctx, 0)
	must(t, err)
	if fixed.Len() != first.Len() {
		t.Errorf("rebuilt tree has %d inodes, want %d", fixed.Len(), first.Len())
	}
	if now, _ := os.ReadFile(saved); string(now) == string(data) {
		t.Error("damaged tree file was not replaced")
	}
}
