package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// pullThreeLayers pulls threeLayers into a new store from a registry; it
// returns the store, the image (closed at the end of the test) and its ref.
func pullThreeLayers(t *testing.T) (*Store, *Image, string) {
	addr, _ := startRegistry(t)
	img, _ := threeLayers(t)
	ref := addr + "/tree:v1"
	push(t, ref, img)
	s := openStore(t, "")
	ci, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	t.Cleanup(func() { ci.Close() })
	return s, ci, ref
}

// TestTreeIsSavedAndReused checks that a merged tree is saved, that a
// later Tree call uses it without the indexes, and that a damaged one is
// merged again and replaced.
func TestTreeIsSavedAndReused(t *testing.T) {
	s, ci, ref := pullThreeLayers(t)
	ctx := context.Background()

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

// TestTreesVerifiedAndPruned checks that cache verify finds a damaged
// saved tree (and --repair removes it), and that prune keeps the trees of
// stored images, prefixes included, and removes the others.
func TestTreesVerifiedAndPruned(t *testing.T) {
	s, ci, _ := pullThreeLayers(t)
	ctx := context.Background()
	for _, n := range []int{0, 1} {
		_, err := ci.Tree(ctx, n)
		must(t, err)
	}
	full, one := s.treePath(ci.Layers), s.treePath(ci.Layers[:1])
	stray := filepath.Join(filepath.Dir(full), treeName(nil))
	must(t, os.WriteFile(stray, []byte("not a tree"), 0o644))

	rep, err := s.Verify(ctx, VerifyOptions{Repair: true})
	must(t, err)
	if rep.Trees != 3 || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemTree || !rep.Problems[0].Repaired {
		t.Fatalf("verify: %d trees, problems %+v; want 3 trees and the stray one found and removed", rep.Trees, rep.Problems)
	}
	must(t, os.WriteFile(stray, []byte("not a tree"), 0o644))
	_, err = s.Prune(ctx, PruneOptions{})
	must(t, err)
	for _, p := range []string{full, one} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed a tree in use: %v", err)
		}
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("prune kept an unreferenced tree: %v", err)
	}
	_, err = s.Prune(ctx, PruneOptions{All: true})
	must(t, err)
	if _, err := os.Stat(full); !os.IsNotExist(err) {
		t.Errorf("prune --all kept a tree: %v", err)
	}
}
