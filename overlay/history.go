package overlay

import (
	"fmt"
	"strings"
)

// EventKind says what one layer did to a path.
type EventKind uint8

// What a layer can do to a path.
const (
	// Created: the path did not exist below and this layer made it, by an
	// entry of its own or as the parent of one (Entry is nil then).
	Created EventKind = iota + 1
	// Modified: an entry of this layer rewrote the path with the same type
	// (a new file, link or device in its place).
	Modified
	// Changed: a directory entry of this layer updated the attributes of a
	// directory that stays, children and all.
	Changed
	// Replaced: an entry of this layer put a different type in its place
	// (file to directory, directory to symlink, ...), dropping any subtree.
	Replaced
	// WhitedOut: this layer has a .wh. marker for the path itself.
	WhitedOut
	// Hidden: this layer removed an ancestor (By): a whiteout, an opaque
	// marker or a non-directory in the ancestor's place.
	Hidden
)

var eventNames = [...]string{
	Created:   "created",
	Modified:  "modified",
	Changed:   "changed",
	Replaced:  "replaced",
	WhitedOut: "whited out",
	Hidden:    "hidden",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one thing a layer did to a path.
type Event struct {
	Layer int
	Kind  EventKind
	// Entry is this layer's entry for the path, if it has one.
	Entry *Entry
	// By names what removed the path: for WhitedOut the marker, for Hidden
	// the ancestor's marker or replacing entry.
	By string
}

// History replays the layers and reports, in layer order, every event that
// touched path p (a whiteout and a re-creation in one layer are two events).
// It fails where Merge would.
func History(layers []*Layer, p string) ([]Event, error) {
	clean, err := cleanName(p)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p, err)
	}
	p = clean
	m := newMerger()
	var events []Event
	prev := m.lookup(p)
	m.observe = func(layer int, l *Layer) {
		cur := m.lookup(p)
		events = append(events, layerEvents(layer, l, p, prev, cur)...)
		prev = cur
	}
	for i, l := range layers {
		if err := m.apply(i, l, false); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// layerEvents compares the node at p before and after one layer.
func layerEvents(layer int, l *Layer, p string, prev, cur *inode) []Event {
	t := touches(l, p)
	var out []Event
	removed := func() {
		switch {
		case t.whiteout != "":
			out = append(out, Event{Layer: layer, Kind: WhitedOut, By: t.whiteout})
		case t.ancestor != "":
			out = append(out, Event{Layer: layer, Kind: Hidden, By: t.ancestor})
		}
	}
	switch {
	case prev == nil && cur == nil:
	case prev == nil:
		out = append(out, Event{Layer: layer, Kind: Created, Entry: t.entry})
	case cur == nil:
		removed()
		if len(out) == 0 { // a non-directory replaced an ancestor
			out = append(out, Event{Layer: layer, Kind: Hidden, By: t.replacer})
		}
	case prev == cur:
		if t.entry != nil {
			out = append(out, Event{Layer: layer, Kind: Changed, Entry: t.entry})
		}
	default:
		removed()
		switch {
		case len(out) > 0:
			out = append(out, Event{Layer: layer, Kind: Created, Entry: t.entry})
		case prev.isDir() != cur.isDir() || kind(prev) != kind(cur):
			out = append(out, Event{Layer: layer, Kind: Replaced, Entry: t.entry})
		default:
			out = append(out, Event{Layer: layer, Kind: Modified, Entry: t.entry})
		}
	}
	return out
}

func kind(n *inode) Type {
	if n.e == nil {
		return TypeDir
	}
	return n.e.Type
}

// touch is what one layer's entries say about a path.
type touch struct {
	entry    *Entry // the last entry for the path itself
	whiteout string // a marker for the path itself
	ancestor string // the marker of the nearest hidden ancestor
	replacer string // an entry putting a non-directory at an ancestor
}

func touches(l *Layer, p string) touch {
	var t touch
	for i := range l.Entries {
		e := &l.Entries[i]
		q, err := cleanName(e.Name)
		if err != nil {
			continue
		}
		kind, target, _ := classify(q)
		switch {
		case kind == markWhiteout && target == p:
			t.whiteout = e.Name
		case kind == markWhiteout && isAncestor(target, p):
			t.ancestor = e.Name
		case kind == markOpaque && isAncestor(target, p):
			t.ancestor = e.Name
		case kind != notMarker:
		case q == p:
			t.entry = e
		case isAncestor(q, p) && e.Type != TypeDir:
			t.replacer = e.Name
		}
	}
	return t
}

// isAncestor reports whether clean path a is a proper ancestor of p.
func isAncestor(a, p string) bool {
	if a == "" {
		return p != ""
	}
	return len(p) > len(a) && p[len(a)] == '/' && strings.HasPrefix(p, a)
}
