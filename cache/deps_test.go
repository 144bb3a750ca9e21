package cache

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

// TestDependencies keeps cache on its side of the design: it may use
// overlay and go-containerregistry, never the FUSE layer, the builder or
// the CLI.
func TestDependencies(t *testing.T) {
	goBin := testenv.RequireTool(t, "go", "install Go (https://go.dev/dl)")
	out, err := exec.Command(goBin, "list", "-deps", "github.com/ocifs/ocifs/cache").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/ocifs/ocifs/internal/test") {
			t.Errorf("cache depends on test helper %s", dep)
		}
		for _, banned := range []string{"github.com/ocifs/ocifs/fusefs", "github.com/ocifs/ocifs/builder", "github.com/ocifs/ocifs/cmd", "github.com/hanwen/go-fuse", "github.com/urfave/cli"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("cache depends on %s", dep)
			}
		}
	}
}

// TestTarindexDependencies: the scanner uses the standard library and
// overlay only, so that it stays small enough to fuzz fast.
func TestTarindexDependencies(t *testing.T) {
	goBin := testenv.RequireTool(t, "go", "install Go (https://go.dev/dl)")
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/ocifs/ocifs/cache/internal/tarindex").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/ocifs/ocifs/cache/internal/tarindex", "github.com/ocifs/ocifs/overlay":
		default:
			t.Errorf("tarindex depends on %s", dep)
		}
	}
}
