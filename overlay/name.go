package overlay

import (
	"errors"
	"strings"
)

// Whiteout marker names (OCI image spec, "Representing Changes").
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// metaPrefix starts aufs bookkeeping names (.wh..wh.plnk, .wh..wh.aufs),
	// which older images carry and which have no meaning in a merged view.
	metaPrefix = ".wh..wh."
)

var (
	errEscapes      = errors.New("name escapes the root")
	errBareWhiteout = errors.New(`bare ".wh." whiteout names nothing`)
	errMarkerDir    = errors.New("whiteout marker used as a directory")
)

// cleanName turns a tar entry name into a clean root-relative path: no
// leading "/" or "./", no empty or "." components, ".." resolved lexically.
// The root itself is "". A name whose ".." would climb above the root is an
// error: such names are hostile, never produced by image builders.
func cleanName(name string) (string, error) {
	if isClean(name) {
		return name, nil
	}
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", errEscapes
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}

// isClean reports whether name is already a clean root-relative path, the
// common case, so that cleanName need not allocate.
func isClean(name string) bool {
	if name == "" {
		return true
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		switch name[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// splitPath returns the parent directory and base name of a clean path.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// markerKind classifies a clean entry path by its whiteout role.
type markerKind uint8

const (
	notMarker    markerKind = iota
	markWhiteout            // .wh.NAME: hide NAME of lower layers
	markOpaque              // .wh..wh..opq: hide all lower children of the dir
	markMeta                // aufs bookkeeping: skip
)

// classify returns the marker kind of a clean path and, for a whiteout, the
// path it hides. Only the base name decides, except that anything below an
// aufs bookkeeping directory is bookkeeping too, and a whiteout marker used
// as a directory is an error.
func classify(p string) (markerKind, string, error) {
	dir, base := splitPath(p)
	if strings.Contains(dir, whiteoutPrefix) {
		for _, c := range strings.Split(dir, "/") {
			if strings.HasPrefix(c, metaPrefix) {
				return markMeta, "", nil
			}
			if strings.HasPrefix(c, whiteoutPrefix) {
				return notMarker, "", errMarkerDir
			}
		}
	}
	if !strings.HasPrefix(base, whiteoutPrefix) {
		return notMarker, "", nil
	}
	switch {
	case base == opaqueMarker:
		return markOpaque, dir, nil
	case strings.HasPrefix(base, metaPrefix):
		return markMeta, "", nil
	case base == whiteoutPrefix:
		return notMarker, "", errBareWhiteout
	}
	return markWhiteout, joinPath(dir, base[len(whiteoutPrefix):]), nil
}

func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}
