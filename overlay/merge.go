package overlay

import (
	"errors"
	"fmt"
	"strings"
)

// EntryError reports an entry that Merge cannot accept.
type EntryError struct {
	Layer int    // position of the layer in the image, from 0 (the base)
	Name  string // the entry's name as stored in the tar
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("layer %d: entry %q: %v", e.Layer, e.Name, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

var (
	errLinkMissing = errors.New("hardlink target does not exist")
	errLinkDir     = errors.New("hardlink target is a directory")
	errBadType     = errors.New("unknown entry type")
	errRootType    = errors.New("the root must be a directory")
	errNotDir      = errors.New("a parent is not a directory")
	errLoop        = errors.New("too many levels of symbolic links")
)

// maxLinkHops bounds symlink expansion while resolving a path, as the
// kernel's 40 does for lookups; extraction tools allow a few more.
const maxLinkHops = 255

// maxExpansion bounds the path bytes that symlink expansion may build in
// one Merge (or History). Each hop of resolve copies the rest of the path
// and then walks it, so a hostile layer of long symlink chains (255 hops
// of 4 KiB targets) costs each of its entries 1 MiB of walking, or 128
// MiB of copying when every target ends in more path: a few MiB of tar
// would keep Merge busy for hours. Real images expand a few dozen bytes
// per entry that has a symlinked parent (/lib -> usr/lib), so millions of
// entries stay far below this.
const maxExpansion = 256 << 20

var errExpansion = fmt.Errorf("symbolic links in parent directories expand to more than %d bytes in all", maxExpansion)

// inode is the mutable node of a merge in progress. Every path of a
// hardlink group points to the same inode.
type inode struct {
	e     *Entry // attributes and content; nil for a directory Merge created
	layer int    // where e comes from (for content), or the creating layer
	idx   int    // e's index in its layer's entries (for StIno)
	kids  map[string]*inode
	ino   uint32 // assigned by freeze
}

func (n *inode) isDir() bool { return n.kids != nil }

// merger applies layers one at a time onto a mutable tree.
type merger struct {
	root *inode
	// hidden holds what the current layer's whiteouts removed, by path, so a
	// hardlink of the same layer can still name it (see resolveLink).
	hidden map[string]*inode
	// observe, when set, is called after each layer (for History).
	observe func(layer int, l *Layer)
	stack   []*inode // resolve's scratch space
	raw     bool     // markers are plain files (Raw)
	made    int      // inodes made, a bound on the tree's size
	// expanded counts the path bytes that symlink expansion has built so
	// far (see maxExpansion).
	expanded int64
	// pin tracks which names the merged layers decide (MergePartial);
	// nil in a full merge.
	pin *pinning
}

func newMerger() *merger {
	return &merger{root: &inode{layer: -1, kids: map[string]*inode{}}}
}

// Merge applies the layers, base first, with the OCI whiteout rules, and
// returns the immutable merged tree. Every error about an entry's name,
// type or hardlink target comes from here; nothing later can fail on the
// tree's shape.
func Merge(layers []*Layer) (*Tree, error) {
	m := newMerger()
	for i, l := range layers {
		if err := m.apply(i, l, false); err != nil {
			return nil, err
		}
	}
	return freeze(m.root, m.made, stInos(layers, 0)), nil
}

// Raw returns one layer's own content as a tree, whiteout markers kept as
// the ordinary files they are in the tar: the view of `ocifs mount --layer`.
// index is the layer's position in the image (where its bytes are read).
// A hardlink to a file of another layer shows as an empty regular file.
func Raw(l *Layer, index int) (*Tree, error) {
	m := newMerger()
	if err := m.apply(index, l, true); err != nil {
		return nil, err
	}
	return freeze(m.root, m.made, rawStInos(l, index)), nil
}

// apply merges one layer. Whiteouts and opaque markers act on the lower
// layers only, so they are applied first, wherever they sit in the tar;
// then the layer's own entries are applied in tar order.
func (m *merger) apply(layer int, l *Layer, raw bool) error {
	m.raw = raw
	names := make([]string, len(l.Entries))
	kinds := make([]markerKind, len(l.Entries))
	for i := range l.Entries {
		e := &l.Entries[i]
		p, err := cleanName(e.Name)
		if err != nil {
			return &EntryError{layer, e.Name, err}
		}
		names[i] = p
		if raw {
			continue
		}
		kind, target, err := classify(p)
		if err != nil {
			return &EntryError{layer, e.Name, err}
		}
		kinds[i] = kind
		m.pin.begin(kind == markOpaque, baseName(target))
		switch kind {
		case markWhiteout:
			err = m.hide(target)
		case markOpaque:
			err = m.makeOpaque(target)
		}
		if err = m.pin.end(err); err != nil {
			return &EntryError{layer, e.Name, err}
		}
	}
	for i := range l.Entries {
		if kinds[i] != notMarker {
			continue
		}
		m.pin.beginAdd(names[i], &l.Entries[i])
		err := m.add(layer, i, names[i], &l.Entries[i], raw)
		if err = m.pin.end(err); err != nil {
			return &EntryError{layer, l.Entries[i].Name, err}
		}
	}
	m.hidden = nil
	if m.observe != nil {
		m.observe(layer, l)
	}
	return nil
}

// hide removes the node at p, if any, remembering it for resolveLink.
func (m *merger) hide(p string) error {
	dir, base := splitPath(p)
	parent, err := m.resolve(-1, dir, true, false)
	if err != nil || parent == nil || !parent.isDir() {
		return err
	}
	if n, ok := parent.kids[base]; ok {
		m.remember(p, n)
		delete(parent.kids, base)
	}
	return nil
}

// makeOpaque removes every child of directory p that lower layers made;
// the directory itself stays.
func (m *merger) makeOpaque(p string) error {
	d, err := m.resolve(-1, p, true, false)
	if err != nil || d == nil || !d.isDir() {
		return err
	}
	for name, n := range d.kids {
		m.remember(joinPath(p, name), n)
	}
	d.kids = map[string]*inode{}
	return nil
}

func (m *merger) remember(p string, n *inode) {
	if m.hidden == nil {
		m.hidden = map[string]*inode{}
	}
	if _, ok := m.hidden[p]; !ok {
		m.hidden[p] = n
	}
}

// addedNames returns the names that adding entry e at clean path p sets
// in some directory: its base name, and for a hardlink its target's, whose
// link count it changes (see Partial).
func addedNames(p string, e *Entry) []string {
	names := []string{baseName(p)}
	if e.Type == TypeHardlink {
		if t, err := cleanName(e.Linkname); err == nil {
			names = append(names, baseName(t))
		}
	}
	return names
}

func baseName(p string) string {
	_, b := splitPath(p)
	return b
}

// lookup returns the node at clean path p, or nil, resolving symlinks in
// its directories but not in its last component.
func (m *merger) lookup(p string) *inode {
	n, _ := m.resolve(-1, p, false, false)
	return n
}

func descend(n *inode, p string) *inode {
	for p != "" && n != nil {
		if !n.isDir() {
			return nil
		}
		var c string
		c, p, _ = strings.Cut(p, "/")
		n = n.kids[c]
	}
	return n
}

// add applies one non-marker entry at clean path p, entry idx of its
// layer.
func (m *merger) add(layer, idx int, p string, e *Entry, raw bool) error {
	if !e.Type.Valid() {
		return errBadType
	}
	if p == "" {
		if e.Type != TypeDir {
			return errRootType
		}
		m.root.e, m.root.layer, m.root.idx = e, layer, idx
		return nil
	}
	dir, base := splitPath(p)
	parent, err := m.resolve(layer, dir, true, true)
	if err != nil {
		return err
	}
	if !parent.isDir() {
		return errNotDir
	}
	n, err := m.newNode(layer, idx, p, e, raw)
	if err != nil {
		return err
	}
	m.pin.set(parent, base)
	if old := parent.kids[base]; old != nil && old.isDir() && n.isDir() {
		old.e, old.layer, old.idx = e, layer, idx // a directory over a directory: merge
		return nil
	}
	parent.kids[base] = n
	return nil
}

// newNode makes the node for entry e: a fresh inode, or for a hardlink the
// inode its target has now.
func (m *merger) newNode(layer, idx int, p string, e *Entry, raw bool) (*inode, error) {
	if e.Type != TypeHardlink {
		m.made++
		n := &inode{e: e, layer: layer, idx: idx}
		if e.Type == TypeDir {
			n.kids = map[string]*inode{}
		}
		return n, nil
	}
	target, err := cleanName(e.Linkname)
	if err != nil {
		return nil, fmt.Errorf("hardlink target %q: %w", e.Linkname, err)
	}
	t := m.resolveLink(target)
	switch {
	case t == nil && raw:
		return &inode{e: &Entry{Name: e.Name, Type: TypeRegular, Mode: e.Mode, UID: e.UID, GID: e.GID,
			MTime: e.MTime, MTimeNsec: e.MTimeNsec, Xattrs: e.Xattrs}, layer: layer, idx: idx}, nil
	case t == nil || target == p:
		return nil, fmt.Errorf("%w: %q", errLinkMissing, e.Linkname)
	case t.isDir():
		return nil, fmt.Errorf("%w: %q", errLinkDir, e.Linkname)
	}
	return t, nil
}

// resolveLink finds a hardlink's target: in the tree as it stands, or else
// among what this layer's whiteouts removed from the lower layers, since a
// layer may replace a file and link to its old self in the same breath.
func (m *merger) resolveLink(target string) *inode {
	if n := m.lookup(target); n != nil {
		return n
	}
	m.pin.taint(true) // the complete merge may find it where this one cannot
	for p := target; ; {
		if n, ok := m.hidden[p]; ok {
			m.pin.taint(true) // where the hidden node stood is not tracked
			return descend(n, strings.TrimPrefix(strings.TrimPrefix(target, p), "/"))
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return nil
		}
		p = p[:i]
	}
}

// resolve finds clean path p the way extracting into a real directory
// does (securejoin): a symlink in a directory component is followed inside
// the tree (an absolute target starts at the root, ".." stops there), and
// the last component is followed only with followLast. With create set
// (layer >= 0), missing directories are made on the way, 0755 and
// root-owned, where the resolution puts them. It returns nil when p does
// not exist, and an error when a directory component is a file or the
// symlinks loop.
func (m *merger) resolve(layer int, p string, followLast, create bool) (*inode, error) {
	stack := append(m.stack[:0], m.root)
	defer func() { m.stack = stack[:0] }()
	for rest, hops := p, 0; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if !cur.isDir() {
			return nil, errNotDir
		}
		next := cur.kids[c]
		m.pin.walk(cur, c, next != nil)
		switch {
		case next == nil && !create:
			return nil, nil
		case next == nil && strings.HasPrefix(c, whiteoutPrefix) && !m.raw:
			return nil, errMarkerDir
		case next == nil:
			m.made++
			next = &inode{layer: layer, idx: -1, kids: map[string]*inode{}}
			cur.kids[c] = next
			m.pin.set(cur, c)
		case kind(next) == TypeSymlink && (rest != "" || followLast):
			if hops++; hops > maxLinkHops {
				return nil, errLoop
			}
			target := next.e.Linkname
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			if m.expanded += int64(len(target) + 1 + len(rest)); m.expanded > maxExpansion {
				return nil, errExpansion
			}
			rest = target + "/" + rest
			continue
		case !next.isDir() && rest != "":
			if !create {
				return nil, nil
			}
			return nil, errNotDir
		}
		stack = append(stack, next)
	}
	return stack[len(stack)-1], nil
}
