package tarindex

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/ocifs/ocifs/overlay"
)

// Limits bound what ScanLimited accepts from one layer. A field <= 0
// means no limit.
type Limits struct {
	MaxEntries     int   // tar entries (PAX global headers not counted)
	MaxName        int   // bytes of an entry's name or link target
	MaxXattr       int   // bytes of one extended attribute's value
	MaxIndexMemory int64 // bytes of the index in memory (see IndexMemory)
	MaxStream      int64 // bytes of the tar stream; checked against declared sizes
}

// Limit names, as LimitError.Limit reports them (and as ocifs spells its
// flags).
const (
	LimitEntries     = "max-entries"
	LimitName        = "max-name"
	LimitXattr       = "max-xattr"
	LimitIndexMemory = "max-index-memory"
	LimitLayerSize   = "max-layer-size"
)

// Fixed rules of Linux, not configurable: what the kernel cannot serve is
// rejected while scanning rather than failing later inside a mount.
const (
	nameMax      = 255 // NAME_MAX: bytes of one path component
	xattrNameMax = 255 // XATTR_NAME_MAX
)

// LimitError reports a layer that exceeds one of the Limits.
type LimitError struct {
	Limit string // one of the Limit* names
	Max   int64
	What  string // what exceeded it, e.g. "name of 5000 bytes"
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s exceeds the limit of %d (%s)", e.What, e.Max, e.Limit)
}

func limitf(limit string, max int64, format string, args ...any) *LimitError {
	return &LimitError{Limit: limit, Max: max, What: fmt.Sprintf(format, args...)}
}

// Sizes of the index's in-memory structures.
const (
	entryBytes  = int64(unsafe.Sizeof(overlay.Entry{}))
	xattrBytes  = int64(unsafe.Sizeof(overlay.Xattr{}))
	extentBytes = int64(unsafe.Sizeof(overlay.Extent{}))
)

// IndexMemory is what entry e costs in memory as part of a Layer: the
// Entry itself, its strings and its xattr and extent slices.
func IndexMemory(e *overlay.Entry) int64 {
	n := entryBytes + int64(len(e.Name)+len(e.Linkname)) + int64(len(e.Sparse))*extentBytes
	for _, x := range e.Xattrs {
		n += xattrBytes + int64(len(x.Name)+len(x.Value))
	}
	return n
}

// EntryBytes is the size of one overlay.Entry, for estimates of an index's
// memory from its entry count.
const EntryBytes = entryBytes

// checkEntry applies the per-entry limits and Linux's fixed ones.
func (l Limits) checkEntry(e *overlay.Entry) error {
	if err := l.checkName("name", e.Name); err != nil {
		return err
	}
	if err := l.checkComponents(e.Name); err != nil {
		return err
	}
	if e.Type == overlay.TypeSymlink || e.Type == overlay.TypeHardlink {
		if err := l.checkName("link target", e.Linkname); err != nil {
			return err
		}
	}
	for _, x := range e.Xattrs {
		if len(x.Name) > xattrNameMax {
			return fmt.Errorf("xattr name of %d bytes is longer than Linux allows (%d)", len(x.Name), xattrNameMax)
		}
		if l.MaxXattr > 0 && len(x.Value) > l.MaxXattr {
			return limitf(LimitXattr, int64(l.MaxXattr), "xattr %s of %d bytes", shorten(x.Name), len(x.Value))
		}
	}
	return nil
}

func (l Limits) checkName(what, s string) error {
	if l.MaxName > 0 && len(s) > l.MaxName {
		return limitf(LimitName, int64(l.MaxName), "%s of %d bytes", what, len(s))
	}
	return nil
}

// checkComponents rejects a path component longer than NAME_MAX, which no
// Linux file system can look up. A whiteout marker may exceed it by its
// ".wh." prefix, since it names a file that could exist.
func (l Limits) checkComponents(name string) error {
	for c := range strings.SplitSeq(name, "/") {
		max := nameMax
		if strings.HasPrefix(c, ".wh.") {
			max += len(".wh.")
		}
		if len(c) > max {
			return fmt.Errorf("path component of %d bytes is longer than Linux allows (%d)", len(c), nameMax)
		}
	}
	return nil
}

// shorten quotes s for an error message, cutting it if it is long: hostile
// names can be megabytes.
func shorten(s string) string {
	const keep = 120
	if len(s) <= keep {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:keep], len(s))
}
