package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// TestMountServerLogs checks that a background mount server, which has no
// terminal, logs why a read failed to its log file in the cache: here the
// unpacked copy it reads is cut short behind its back.
func TestMountServerLogs(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("log") + ":v1"
	ti.Push(t, ti.Image(t, [][]byte{ti.Layer(ti.File("big", strings.Repeat("x", 1<<20)))}), ref)
	dir := mountImage(t, ref)
	copies, err := filepath.Glob(filepath.Join(cacheDir(t), "ocifs/unpacked/sha256/*"))
	if err != nil || len(copies) != 1 {
		t.Fatalf("want one unpacked copy, got %v, %v", copies, err)
	}
	if err := os.Truncate(copies[0], 1024); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "big")); err == nil {
		t.Fatal("reading a file whose content is gone succeeded")
	}
	logs, _ := filepath.Glob(filepath.Join(cacheDir(t), "ocifs/logs/mount-*.log"))
	if len(logs) != 1 {
		t.Fatalf("want one server log, got %v", logs)
	}
	b, err := os.ReadFile(logs[0])
	if err != nil || !strings.Contains(string(b), "reading file content") {
		t.Errorf("server log %s lacks the failed read: %q, %v", logs[0], b, err)
	}
}
