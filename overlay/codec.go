package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A merged tree is saved so a warm mount need not load the layer indexes
// nor merge again. The encoding (little endian, uvarints) is:
//
//	magic "OCIFSTRE", u32 version
//	uvarint layers, nodes, dirents, blob length; flags byte
//	blob: every string, in the order the records below consume them
//	dirents: name length, ino
//	nodes: type, mode, uid, gid, nlink, mtime, nsec, layer+1, parent, st_ino,
//	  then by type: directory (first child, child count), regular
//	  (size, offset, extents), symlink (target length), device (major,
//	  minor); then xattrs (count, name and value lengths)
//	u32 CRC-32C of all the above
//
// UnmarshalTree checks everything a Tree promises (types, ranges, sorted
// and unique names, a parent for every directory, no cycles), so a
// damaged or hostile file is an error, never a bad tree.

const (
	treeMagic = "OCIFSTRE"
	// TreeVersion changes whenever the encoding or the merge rules change,
	// so saved trees made by older rules are never used.
	TreeVersion = 2
)

var (
	errTreeCorrupt = errors.New("corrupt tree")
	crcTable       = crc32.MakeTable(crc32.Castagnoli)
)

// MarshalBinary encodes the tree for UnmarshalTree. layers is the number
// of layers it was merged from.
func (t *Tree) MarshalBinary(layers int) []byte {
	var blob []byte
	var dir, node []byte
	for _, d := range t.dirents {
		blob = append(blob, d.Name...)
		dir = binary.AppendUvarint(dir, uint64(len(d.Name)))
		dir = binary.AppendUvarint(dir, d.Ino)
	}
	for i := range t.nodes {
		node, blob = appendNode(node, blob, &t.nodes[i])
	}
	out := append([]byte(treeMagic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[len(treeMagic):], TreeVersion)
	for _, v := range []int{layers, len(t.nodes), len(t.dirents), len(blob)} {
		out = binary.AppendUvarint(out, uint64(v))
	}
	flags := byte(0)
	if t.xattrs {
		flags = 1
	}
	out = append(out, flags)
	out = append(append(append(out, blob...), dir...), node...)
	return binary.LittleEndian.AppendUint32(out, crc32Sum(out))
}

func appendNode(b, blob []byte, n *Node) ([]byte, []byte) {
	b = append(b, byte(n.typ))
	for _, v := range []uint64{uint64(n.mode), uint64(n.uid), uint64(n.gid), uint64(n.nlink)} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendVarint(b, n.mtime)
	b = binary.AppendUvarint(b, uint64(n.nsec))
	b = binary.AppendUvarint(b, uint64(n.layer+1))
	b = binary.AppendUvarint(b, uint64(n.parent))
	b = binary.AppendUvarint(b, n.stino)
	switch n.typ {
	case TypeDir:
		b = binary.AppendUvarint(b, uint64(n.kids))
		b = binary.AppendUvarint(b, uint64(n.nkids))
	case TypeRegular:
		b = binary.AppendUvarint(b, uint64(n.size))
		b = binary.AppendUvarint(b, uint64(n.offset))
		b = binary.AppendUvarint(b, uint64(len(n.Sparse())))
		for _, x := range n.Sparse() {
			b = binary.AppendUvarint(b, uint64(x.Off))
			b = binary.AppendUvarint(b, uint64(x.Len))
			b = binary.AppendUvarint(b, uint64(x.TarOff))
		}
	case TypeSymlink:
		blob = append(blob, n.target...)
		b = binary.AppendUvarint(b, uint64(len(n.target)))
	case TypeChar, TypeBlock:
		b = binary.AppendUvarint(b, uint64(n.major))
		b = binary.AppendUvarint(b, uint64(n.minor))
	}
	b = binary.AppendUvarint(b, uint64(len(n.Xattrs())))
	for _, x := range n.Xattrs() {
		blob = append(append(blob, x.Name...), x.Value...)
		b = binary.AppendUvarint(b, uint64(len(x.Name)))
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
	}
	return b, blob
}

// UnmarshalTree decodes a tree saved by MarshalBinary from a merge of
// the given number of layers (layers < 0: whatever number it records).
func UnmarshalTree(data []byte, layers int) (*Tree, error) {
	if len(data) < len(treeMagic)+8 || string(data[:len(treeMagic)]) != treeMagic {
		return nil, fmt.Errorf("%w: not a tree file", errTreeCorrupt)
	}
	if v := binary.LittleEndian.Uint32(data[len(treeMagic):]); v != TreeVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errTreeCorrupt, v, TreeVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32Sum(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errTreeCorrupt)
	}
	d := &treeDecoder{b: body[len(treeMagic)+4:]}
	t, layers, err := d.tree(layers)
	if err == nil {
		err = t.check(layers)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTreeCorrupt, err)
	}
	return t, nil
}

func crc32Sum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
