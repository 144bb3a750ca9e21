package overlay

import (
	"fmt"
	"io"
)

// Type is the kind of a tar entry or of a merged node.
type Type uint8

// Entry and node types. TypeHardlink only occurs in a Layer: Merge resolves
// every hardlink to the node it names, so a Tree never contains one.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink
	TypeChar
	TypeBlock
	TypeFifo
)

var typeNames = [...]string{
	TypeRegular:  "file",
	TypeDir:      "dir",
	TypeSymlink:  "symlink",
	TypeHardlink: "hardlink",
	TypeChar:     "char",
	TypeBlock:    "block",
	TypeFifo:     "fifo",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is one of the defined types.
func (t Type) Valid() bool { return t >= TypeRegular && t <= TypeFifo }

// Xattr is one extended attribute. Value holds the raw bytes, which need not
// be UTF-8 (security.capability is binary).
type Xattr struct {
	Name  string
	Value string
}

// Extent is one data fragment of a sparse file: Len bytes at logical offset
// Off of the file are stored at TarOff in the layer's uncompressed tar
// stream. Everything outside the extents reads as zeros.
type Extent struct {
	Off, Len, TarOff int64
}

// Entry is the metadata of one tar entry of a layer, as scanned. Names are
// kept as they appear in the tar (Merge cleans and checks them), so a Layer
// also serves the raw per-layer view, whiteout markers included.
type Entry struct {
	Name string // path as stored in the tar; Merge cleans it
	Type Type
	Mode uint32 // permission bits with setuid, setgid and sticky: Mode&^07777 == 0
	UID  uint32
	GID  uint32

	// Size is the file's logical size (regular files only; 0 otherwise).
	Size int64
	// MTime and MTimeNsec are the modification time in seconds and
	// nanoseconds since the Unix epoch.
	MTime     int64
	MTimeNsec uint32

	// Linkname is the symlink target (kept byte for byte) or, for a
	// hardlink, the path of the entry it links to, as stored in the tar.
	Linkname string
	Devmajor uint32
	Devminor uint32
	// Xattrs are sorted by name, without duplicates.
	Xattrs []Xattr

	// Offset is where the file's content starts in the layer's uncompressed
	// tar stream. For a sparse file, Sparse lists where each data fragment
	// is; Offset is then the first fragment's position.
	Offset int64
	Sparse []Extent
}

// Layer is the index of one layer: its tar entries in stream order.
type Layer struct {
	Entries []Entry
}

// LayerReader reads the uncompressed tar stream of the image's layers, by
// position in the image's layer list. The cache satisfies it.
type LayerReader interface {
	ReadLayerAt(layer int, p []byte, off int64) (int, error)
}

// layerSection adapts one layer of a LayerReader to io.ReaderAt.
type layerSection struct {
	r     LayerReader
	layer int
}

func (s layerSection) ReadAt(p []byte, off int64) (int, error) {
	return s.r.ReadLayerAt(s.layer, p, off)
}

var _ io.ReaderAt = layerSection{}
