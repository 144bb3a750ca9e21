package overlay

import (
	"strings"
)

// Partial is what the top layers of an image decide about its merged tree
// while the layers below them are not known yet: the view of a mount whose
// layers are still downloading, top layer first.
//
// A path is decided when no content of the unknown layers could change
// what the complete tree has there. Partial answers only decided paths and
// otherwise says it does not know; it never guesses. A Partial is
// immutable and safe for concurrent use.
//
// # How a path is decided
//
// MergePartial runs Merge's rules over the known layers alone, on an empty
// root, and tracks for every name in a directory whether the unknown
// layers could change it. An operation (an entry added, a whiteout or
// opaque marker applied) is unsure when resolving its path (or a
// hardlink's target) reaches a name that is missing, or unsure: the unknown layers may have a symlink
// there, so the complete merge may put the entry elsewhere. There it
// replaces or hides a name equal to its own last one, in whichever
// directory: so an unsure operation makes that name unsure in every
// directory (and a hardlink also its target's last name, whose link count
// it changes). An unsure opaque marker empties some unknown directory, and
// an unsure operation that fails here may do anything there: those make
// every name unsure, and so does a hardlink whose target this merge does
// not find (the complete merge may, among what a whiteout removed). Names
// set by later sure operations are sure again.
// A sure operation does in the complete merge exactly what it does here,
// because everything its path reaches is the same there. A directory made
// because an entry needed it is unsure (the unknown layers may have a
// symlink or a file there), until a sure entry of a known layer names it.
//
// A path is decided when every name on it is sure. Then the complete tree
// has the same node there: lower layers are applied first and cannot
// override it. A non-directory's link count is final when every name that
// links to it is sure, since a hardlink may only name a file the layers
// below it made.
type Partial struct {
	low   int
	m     *merger
	base  stInoBase
	links map[*inode]linkCount
}

// linkCount counts the names of a non-directory.
type linkCount struct {
	all, sure uint32
}

// pinning tracks which names of a partial merge are sure (see Partial).
type pinning struct {
	// names holds, per directory and name, the operation that last set it
	// and whether that operation was unsure.
	names map[pinKey]pinState
	op    uint64 // the current operation's sequence number
	// unsureBefore makes every name set by an earlier operation unsure;
	// unsureName does so for one name.
	unsureBefore uint64
	unsureName   map[string]uint64
	unsure       bool     // the current operation is unsure
	wide         bool     // if unsure, it makes every name unsure
	opNames      []string // if unsure, it makes these names unsure
}

type pinKey struct {
	dir  *inode
	name string
}

type pinState struct {
	op     uint64
	unsure bool
}

// begin starts an operation that, if unsure, may set the given names
// (base names), or any name when wide. A nil pinning (a full merge) does
// nothing.
func (p *pinning) begin(wide bool, names ...string) {
	if p == nil {
		return
	}
	p.op++
	p.unsure, p.wide, p.opNames = false, wide, names
}

// beginAdd begins adding entry e at clean path p (addedNames), at no
// cost in a full merge.
func (p *pinning) beginAdd(path string, e *Entry) {
	if p != nil {
		p.begin(false, addedNames(path, e)...)
	}
}

// end ends an operation. An unsure one makes the names it may have set
// unsure, and its error is dropped: the complete merge may resolve its
// path differently and not fail.
func (p *pinning) end(err error) error {
	if p == nil || !p.unsure {
		return err
	}
	if err != nil || p.wide {
		p.unsureBefore = p.op
		return nil
	}
	for _, n := range p.opNames {
		p.unsureName[n] = p.op
	}
	return nil
}

// taint marks the current operation unsure; with wide set, it may set
// any name.
func (p *pinning) taint(wide bool) {
	if p != nil {
		p.unsure = true
		p.wide = p.wide || wide
	}
}

// walk notes that the current operation resolves name in dir; exists
// says whether dir has it here. A missing name is unsure even where a
// sure whiteout removed it: an unsure operation may make it again in the
// complete merge.
func (p *pinning) walk(dir *inode, name string, exists bool) {
	if p != nil && (!exists || !p.sure(dir, name)) {
		p.unsure = true
	}
}

// set records that the current operation sets name in dir.
func (p *pinning) set(dir *inode, name string) {
	if p != nil {
		p.names[pinKey{dir, name}] = pinState{op: p.op, unsure: p.unsure}
	}
}

// sure reports whether name in dir is sure; every name is, with no
// unknown layers (a nil pinning).
func (p *pinning) sure(dir *inode, name string) bool {
	if p == nil {
		return true
	}
	s, ok := p.names[pinKey{dir, name}]
	return ok && !s.unsure && s.op >= p.unsureBefore && s.op >= p.unsureName[name]
}

// MergePartial merges layers[low:] of an image of len(layers) layers,
// knowing nothing of layers[:low] (which may be nil). With low 0 every
// path of the complete tree is decided but the root and directories that
// no layer has an entry for. An error is one Merge would
// return too, or a limit (maxExpansion) that the complete merge may or
// may not reach; either way only the complete merge can tell.
func MergePartial(layers []*Layer, low int) (*Partial, error) {
	m := newMerger()
	if low > 0 {
		m.pin = &pinning{names: map[pinKey]pinState{}, unsureName: map[string]uint64{}}
	}
	for i := low; i < len(layers); i++ {
		if err := m.apply(i, layers[i], false); err != nil {
			return nil, err
		}
	}
	p := &Partial{low: low, m: m, base: stInos(layers, low), links: map[*inode]linkCount{}}
	p.count(m.root, true)
	return p, nil
}

// count counts the names of every non-directory below dir; sure says
// whether the path to dir is.
func (p *Partial) count(dir *inode, sure bool) {
	for name, k := range dir.kids {
		s := sure && p.m.pin.sure(dir, name)
		if k.isDir() {
			p.count(k, s)
			continue
		}
		c := p.links[k]
		c.all++
		if s {
			c.sure++
		}
		p.links[k] = c
	}
}

// Low returns the lowest merged layer.
func (p *Partial) Low() int { return p.low }

// Root returns the root directory's node when the merged layers decide
// its attributes: when one of them has an entry for it ("."), since the
// topmost such entry gives them. As for any directory of a Partial, its
// Nlink (0) and children are not final.
func (p *Partial) Root() (n *Node, ok bool) {
	if p.m.root.e == nil {
		return nil, false
	}
	node := nodeOf(p.m.root, 0)
	node.stino = RootIno
	return &node, true
}

// UnknownRoot returns the root directory as a tree has it when no layer
// has an entry for the root: mode 0755, owned by root, time 0. A mount
// shows it until the layer that has the root's entry is known.
func UnknownRoot() *Node {
	n := nodeOf(&inode{layer: -1}, 0)
	n.stino = RootIno
	return &n
}

// Get returns the node the complete tree has at path p ("" or "." is the
// root; a leading "/" is allowed; symlinks are not followed), with ok true,
// when the merged layers decide it. For a regular file, symlink, device or
// fifo every attribute is final, including Nlink and StIno. For a
// directory, its existence, type and attributes (mode, owner, mtime,
// xattrs, StIno) are final, but not Nlink (reported as 0) nor its
// children. Get does not answer for the root (see Root). Absent paths are
// never decided: ok is false for them.
//
// The node's Ino is 0: nodes of a Partial have no place in a Tree.
func (p *Partial) Get(path string) (n *Node, ok bool) {
	path, err := cleanName(strings.TrimPrefix(path, "/"))
	if err != nil || path == "" {
		return nil, false
	}
	dir := p.m.root
	var in *inode
	for rest := path; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		if !dir.isDir() || !p.m.pin.sure(dir, c) {
			return nil, false
		}
		in = dir.kids[c]
		if in == nil {
			return nil, false
		}
		dir = in
	}
	if in.e == nil {
		return nil, false // made because an entry needed it: never sure
	}
	node := nodeOf(in, 0)
	node.stino = p.base.of(in)
	if !in.isDir() {
		c := p.links[in]
		if c.sure != c.all {
			return nil, false
		}
		node.nlink = c.all
	}
	return &node, true
}
