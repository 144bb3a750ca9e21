package builder

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the package boundary of DESIGN.md: builder
// depends on the standard library and overlay only.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/ocifs/ocifs/builder": true,
		"github.com/ocifs/ocifs/overlay": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("builder imports %s; only the standard library and overlay are allowed", p)
		}
	}
}
