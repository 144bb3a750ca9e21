package lockdir

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestSweep: Sweep removes the directories of a dead process (here: made
// by a child that exited, so its lock is gone) and of nobody (never
// locked), keeps the one this process holds and those of other prefixes,
// and calls clean before removing.
func TestSweep(t *testing.T) {
	parent := t.TempDir()
	live, err := Create(parent, "job-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	// A lock held by a process that then dies: flock(1) holds it only
	// while its command runs.
	dead := filepath.Join(parent, "job-dead")
	if err := os.Mkdir(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("flock"); err == nil {
		if out, err := exec.Command("flock", dead, "true").CombinedOutput(); err != nil {
			t.Fatalf("flock: %v: %s", err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dead, "left"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "other-1")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	var cleaned, removed []string
	Sweep(parent, "job-", func(p string) { cleaned = append(cleaned, p) }, func(p string, err error) {
		if err != nil {
			t.Errorf("removing %s: %v", p, err)
		}
		removed = append(removed, p)
	})
	if !slices.Equal(cleaned, []string{dead}) || !slices.Equal(removed, []string{dead}) {
		t.Fatalf("cleaned %v, removed %v; want only %s", cleaned, removed, dead)
	}
	for _, keep := range []string{live.Path, other} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dead, err)
	}
	if err := live.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.Path); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", live.Path, err)
	}
}

// TestSweepKeepsHeld: the lock belongs to the open file, so
// even this process's own Sweep does not take a directory it holds.
func TestSweepKeepsHeld(t *testing.T) {
	parent := t.TempDir()
	d, err := Create(parent, "x-")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	Sweep(parent, "x-", nil, func(p string, _ error) { t.Errorf("removed %s", p) })
	if _, err := os.Stat(d.Path); err != nil {
		t.Fatal(err)
	}
}

// TestStillThere: Create's check that the directory it locked was not
// removed by another process's Sweep that locked it first.
func TestStillThere(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := lock(p, syscall.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !stillThere(p, f) {
		t.Fatal("stillThere is false for a directory still there")
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if stillThere(p, f) {
		t.Error("stillThere is true for a removed directory")
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if stillThere(p, f) {
		t.Error("stillThere is true for another directory of the same name")
	}
}
