package testimage

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
)

// checkLayer applies one layer to state (path → tar type flag of the
// merged view) and returns the first broken promise of RandomEntries.
func checkLayer(state map[string]byte, layer []Entry) error {
	written := map[string]bool{}
	for _, e := range layer {
		name := strings.TrimSuffix(e.Header.Name, "/")
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if dir != "" && state[dir] != tar.TypeDir {
			return fmt.Errorf("%s: parent %q is not a directory (%q)", name, dir, state[dir])
		}
		target := name
		if strings.HasPrefix(base, ".wh.") && base != ".wh..wh..opq" {
			target = path.Join(dir, strings.TrimPrefix(base, ".wh."))
			if written[target] {
				return fmt.Errorf("whiteout %s names a path written in the same layer", name)
			}
			if _, ok := state[target]; !ok {
				return fmt.Errorf("whiteout %s names a path missing below", name)
			}
		} else if base != ".wh..wh..opq" && written[target] {
			return fmt.Errorf("%s written twice in one layer", name)
		}
		if e.Header.Typeflag == tar.TypeLink {
			if _, ok := state[e.Header.Linkname]; !ok {
				return fmt.Errorf("hardlink %s → missing %s", name, e.Header.Linkname)
			}
		}
		applyEntry(state, written, e)
	}
	return nil
}

func applyEntry(state map[string]byte, written map[string]bool, e Entry) {
	name := strings.TrimSuffix(e.Header.Name, "/")
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	removeUnder := func(p string, self bool) {
		for q := range state {
			if (self && q == p) || strings.HasPrefix(q, p+"/") {
				delete(state, q)
			}
		}
	}
	switch {
	case base == ".wh..wh..opq":
		removeUnder(dir, false)
	case strings.HasPrefix(base, ".wh."):
		t := path.Join(dir, strings.TrimPrefix(base, ".wh."))
		removeUnder(t, true)
		written[t] = true
	default:
		typ := e.Header.Typeflag
		if typ == tar.TypeLink {
			typ = state[e.Header.Linkname]
		}
		if !(typ == tar.TypeDir && state[name] == tar.TypeDir) {
			removeUnder(name, true)
		}
		state[name] = typ
		written[name] = true
	}
}
