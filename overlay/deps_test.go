package overlay

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly enforces the package boundary of DESIGN.md:
// overlay depends on nothing but the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/ocifs/ocifs/overlay" {
			t.Errorf("overlay imports %s; only the standard library is allowed", p)
		}
	}
}
