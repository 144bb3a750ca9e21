package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// treeDecoder reads the records of a tree file. Errors are sticky: after
// the first, every read returns zero and d.err says what went wrong.
type treeDecoder struct {
	b    []byte
	blob string // every string of the file: names are substrings of it
	err  error
}

var errShort = errors.New("truncated")

func (d *treeDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// small reads a uvarint that must fit in a uint32.
func (d *treeDecoder) small() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("value %d out of range", v)
		return 0
	}
	return uint32(v)
}

// count reads a number of records, each at least minSize bytes long in
// what remains, so a hostile count cannot make us allocate much.
func (d *treeDecoder) count(remaining, minSize int) int {
	v := d.uvarint()
	if v > uint64(remaining/minSize) {
		d.fail("count %d exceeds the data", v)
		return 0
	}
	return int(v)
}

func (d *treeDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.blob)) {
		d.fail("string of %d bytes exceeds the data", n)
		return ""
	}
	s := d.blob[:n]
	d.blob = d.blob[n:]
	return s
}

func (d *treeDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// tree decodes the records; it returns the number of layers the tree was
// merged from.
func (d *treeDecoder) tree(layers int) (*Tree, int, error) {
	if got := d.uvarint(); layers < 0 && got <= math.MaxInt32 {
		layers = int(got)
	} else if got != uint64(layers) {
		return nil, 0, fmt.Errorf("made from %d layers, want %d", got, layers)
	}
	nodes := d.count(len(d.b), 12)
	dirents := d.count(len(d.b), 2)
	blob := d.count(len(d.b), 1)
	if d.err != nil || len(d.b) < blob+1 {
		return nil, 0, errShort
	}
	t := &Tree{xattrs: d.b[0]&1 != 0}
	d.blob = string(d.b[1 : 1+blob])
	d.b = d.b[1+blob:]
	t.dirents = make([]Dirent, dirents)
	for i := range t.dirents {
		t.dirents[i] = Dirent{Name: d.str(), Ino: d.uvarint()}
	}
	t.nodes = make([]Node, nodes)
	for i := range t.nodes {
		d.node(&t.nodes[i], uint32(i)+RootIno)
	}
	switch {
	case d.err != nil:
		return nil, 0, d.err
	case len(d.b) != 0 || len(d.blob) != 0:
		return nil, 0, errors.New("trailing data")
	}
	return t, layers, nil
}

func (d *treeDecoder) node(n *Node, ino uint32) {
	n.ino = ino
	n.typ = Type(d.small())
	n.mode, n.uid, n.gid, n.nlink = d.small(), d.small(), d.small(), d.small()
	n.mtime, n.nsec = d.varint(), d.small()
	n.layer = int32(d.small()) - 1
	n.parent = d.small()
	n.stino = d.uvarint()
	switch n.typ {
	case TypeDir:
		n.kids, n.nkids = d.small(), d.small()
	case TypeRegular:
		n.size, n.offset = d.int63(), d.int63()
		if k := d.count(len(d.b), 3); k > 0 {
			n.extra = &nodeExtra{sparse: make([]Extent, k)}
			for i := range n.extra.sparse {
				n.extra.sparse[i] = Extent{Off: d.int63(), Len: d.int63(), TarOff: d.int63()}
			}
		}
	case TypeSymlink:
		n.target = d.str()
		n.size = int64(len(n.target))
	case TypeChar, TypeBlock:
		n.major, n.minor = d.small(), d.small()
	}
	if k := d.count(len(d.b), 2); k > 0 {
		if n.extra == nil {
			n.extra = &nodeExtra{}
		}
		n.extra.xattrs = make([]Xattr, k)
		for i := range n.extra.xattrs {
			n.extra.xattrs[i] = Xattr{Name: d.str(), Value: d.str()}
		}
	}
}

func (d *treeDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) int63() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.fail("value %d out of range", v)
		return 0
	}
	return int64(v)
}

// check verifies what the rest of ocifs relies on: valid types and
// layers, directories whose children are sorted, unique, well named and
// in range, every directory listed by its parent alone (so walks from the
// root end), and sane sparse maps.
func (t *Tree) check(layers int) error {
	if len(t.nodes) == 0 || t.nodes[0].typ != TypeDir || t.nodes[0].parent != RootIno {
		return errors.New("no root directory")
	}
	listed := make([]bool, len(t.nodes)) // directories seen in a listing
	for i := range t.nodes {
		if err := t.checkNode(&t.nodes[i], layers, listed); err != nil {
			return fmt.Errorf("inode %d: %w", i+RootIno, err)
		}
	}
	return nil
}

func (t *Tree) checkNode(n *Node, layers int, listed []bool) error {
	switch {
	case !n.typ.Valid() || n.typ == TypeHardlink:
		return fmt.Errorf("bad type %d", n.typ)
	case n.mode&^07777 != 0:
		return fmt.Errorf("bad mode %o", n.mode)
	case n.layer < -1 || int(n.layer) >= layers:
		return fmt.Errorf("layer %d out of range", n.layer)
	case n.layer < 0 && n.typ != TypeDir:
		return errors.New("content without a layer")
	case n.nsec >= 1e9:
		return errors.New("bad mtime")
	case n.stino == 0:
		return errors.New("no st_ino")
	}
	xs := n.Xattrs()
	for i := 1; i < len(xs); i++ {
		if xs[i-1].Name >= xs[i].Name {
			return errors.New("xattrs not sorted")
		}
	}
	if len(xs) > 0 && !t.xattrs {
		return errors.New("xattrs in a tree marked without")
	}
	if err := checkSparse(n); err != nil {
		return err
	}
	if n.typ != TypeDir {
		return nil
	}
	return t.checkDir(n, listed)
}

func (t *Tree) checkDir(n *Node, listed []bool) error {
	if uint64(n.kids)+uint64(n.nkids) > uint64(len(t.dirents)) {
		return errors.New("children out of range")
	}
	kids := t.Children(n)
	for i, k := range kids {
		switch {
		case k.Name == "" || k.Name == "." || k.Name == ".." || strings.ContainsRune(k.Name, '/'):
			return fmt.Errorf("bad name %q", k.Name)
		case i > 0 && kids[i-1].Name >= k.Name:
			return fmt.Errorf("children not sorted at %q", k.Name)
		case k.Ino <= RootIno || k.Ino-RootIno >= uint64(len(t.nodes)):
			return fmt.Errorf("child %q: inode %d out of range", k.Name, k.Ino)
		}
		if c := t.Node(k.Ino); c.typ == TypeDir {
			if uint64(c.parent) != n.Ino() || listed[k.Ino-RootIno] {
				return fmt.Errorf("directory %q listed outside its parent", k.Name)
			}
			listed[k.Ino-RootIno] = true
		}
	}
	return nil
}

func checkSparse(n *Node) error {
	var end int64
	for _, x := range n.Sparse() {
		if x.Off < end || x.Len < 0 || x.Off > n.size-x.Len || x.TarOff > math.MaxInt64-x.Len {
			return errors.New("bad sparse map")
		}
		end = x.Off + x.Len
	}
	return nil
}
