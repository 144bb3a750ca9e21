package builder

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the package boundary of DESIGN.md: builder
// depends on the standard library and overlay only (and on
// internal/lockdir, a private helper shared with cmd/ocifs that itself
// imports only the standard library: go list -deps would show anything
// it brought in).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/ocifs/ocifs/builder":          true,
		"github.com/ocifs/ocifs/overlay":          true,
		"github.com/ocifs/ocifs/internal/lockdir": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("builder imports %s; only the standard library and overlay are allowed", p)
		}
	}
}
