package overlay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// chain is a layer of 255 symlinks s000 -> s001 -> ... -> d, each target
// made long with pad (before the next name, or after it), then files
// created through s000.
func chain(pad string, padFirst bool, files int) []fentry {
	var es []fentry
	link := func(i int, next string) {
		t := next + "/" + pad
		if padFirst {
			t = pad + next
		}
		es = append(es, symlink(fmt.Sprintf("s%03d", i), t))
	}
	for i := range maxLinkHops - 1 {
		link(i, fmt.Sprintf("s%03d", i+1))
	}
	link(maxLinkHops-1, "d")
	es = append(es, dir("d"))
	for i := range files {
		es = append(es, file(fmt.Sprintf("s000/f%d", i), "x"))
	}
	return es
}

// TestSymlinkExpansionIsBounded: entries that resolve through a chain of
// 255 symlinks with 4 KiB targets would cost each 1 MiB of walking, or
// 128 MiB of copying when the targets end in more path; Merge stops at
// maxExpansion with an error naming the entry, in about a second.
func TestSymlinkExpansionIsBounded(t *testing.T) {
	pad := strings.Repeat("./", 2000)
	for name, es := range map[string][]fentry{
		"walk": chain(pad, true, 1000),
		"copy": chain(pad, false, 100),
	} {
		start := time.Now()
		_, err := Merge(stack{tarOf(es...)}.layers())
		var ee *EntryError
		if !errors.As(err, &ee) || !errors.Is(err, errExpansion) || !strings.HasPrefix(ee.Name, "s000/f") {
			t.Fatalf("%s: err = %v, want an EntryError for s000/f... wrapping errExpansion", name, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s: Merge took %v", name, d)
		}
		t.Logf("%s: %v after %v", name, err, time.Since(start))
	}
	tr, err := Merge(stack{tarOf(chain("", true, 1000)...)}.layers())
	if err != nil || tr.Get("d/f999") == nil {
		t.Fatalf("the same chain with short targets: %v", err)
	}
}
