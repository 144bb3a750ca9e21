package overlay

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
)

// The fixture language: tarOf(file("a", "x"), whiteout("b"), ...) builds a
// layer index and its content, as the cache's scanner would from a tar.

type fixture struct {
	layer *Layer
	data  []byte // the layer's "uncompressed tar stream": content only
}

type opt func(*Entry)

func mode(m uint32) opt         { return func(e *Entry) { e.Mode = m } }
func owner(uid, gid uint32) opt { return func(e *Entry) { e.UID, e.GID = uid, gid } }
func mtime(s int64) opt         { return func(e *Entry) { e.MTime = s } }
func xattr(k, v string) opt {
	return func(e *Entry) {
		e.Xattrs = append(e.Xattrs, Xattr{k, v})
		sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Name < e.Xattrs[j].Name })
	}
}

// fentry is an entry with its content, before offsets are assigned.
type fentry struct {
	Entry
	content string
}

func mk(name string, t Type, m uint32, opts []opt) fentry {
	e := Entry{Name: name, Type: t, Mode: m}
	for _, o := range opts {
		o(&e)
	}
	return fentry{Entry: e}
}

func file(name, content string, opts ...opt) fentry {
	f := mk(name, TypeRegular, 0644, opts)
	f.content, f.Size = content, int64(len(content))
	return f
}
func dir(name string, opts ...opt) fentry { return mk(name, TypeDir, 0755, opts) }
func symlink(name, target string, opts ...opt) fentry {
	f := mk(name, TypeSymlink, 0777, opts)
	f.Linkname = target
	return f
}
func hardlink(name, target string) fentry {
	f := mk(name, TypeHardlink, 0644, nil)
	f.Linkname = target
	return f
}
func whiteout(name string) fentry {
	d, b := splitPath(strings.TrimSuffix(name, "/"))
	return mk(joinPath(d, ".wh."+b), TypeRegular, 0, nil)
}
func opaque(dirName string) fentry {
	return mk(joinPath(strings.TrimSuffix(dirName, "/"), opaqueMarker), TypeRegular, 0, nil)
}
func device(name string, t Type, major, minor uint32, opts ...opt) fentry {
	f := mk(name, t, 0600, opts)
	f.Devmajor, f.Devminor = major, minor
	return f
}
func fifo(name string, opts ...opt) fentry { return mk(name, TypeFifo, 0644, opts) }

// tarOf lays out the entries' content one after another, as in a tar.
func tarOf(es ...fentry) fixture {
	f := fixture{layer: &Layer{}}
	for _, e := range es {
		f.data = append(f.data, make([]byte, 512)...) // a "header"
		e.Offset = int64(len(f.data))
		f.data = append(f.data, e.content...)
		f.layer.Entries = append(f.layer.Entries, e.Entry)
	}
	return f
}

// stack is a list of fixture layers; it is the LayerReader of the image.
type stack []fixture

func (s stack) layers() []*Layer {
	ls := make([]*Layer, len(s))
	for i := range s {
		ls[i] = s[i].layer
	}
	return ls
}

func (s stack) ReadLayerAt(layer int, p []byte, off int64) (int, error) {
	if layer < 0 || layer >= len(s) {
		return 0, fmt.Errorf("no layer %d", layer)
	}
	d := s[layer].data
	if off >= int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(p, d[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func mustMerge(t testing.TB, s stack) *Tree {
	t.Helper()
	tr, err := Merge(s.layers())
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return tr
}

// dump renders every path of the tree (root aside) as one line:
// "path type mode uid:gid detail [nlink=N] [xattrs]" where detail is a
// file's content in quotes, a symlink's target after "->", or a device's
// major:minor.
func dump(t testing.TB, tr *Tree, r LayerReader) []string {
	t.Helper()
	var out []string
	err := tr.Walk(func(p string, n *Node) error {
		if p == "" {
			return nil
		}
		line := fmt.Sprintf("%s %s %04o %d:%d", p, n.Type(), n.Mode(), n.UID(), n.GID())
		switch n.Type() {
		case TypeRegular:
			buf := make([]byte, n.Size())
			if _, err := n.ReadAt(r, buf, 0); err != nil && err != io.EOF {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			line += fmt.Sprintf(" %q", buf)
			if n.Nlink() > 1 {
				line += fmt.Sprintf(" nlink=%d", n.Nlink())
			}
		case TypeSymlink:
			line += " -> " + n.Target()
			if n.Nlink() > 1 {
				line += fmt.Sprintf(" nlink=%d", n.Nlink())
			}
		case TypeChar, TypeBlock:
			ma, mi := n.Dev()
			line += fmt.Sprintf(" %d:%d", ma, mi)
		}
		for _, x := range n.Xattrs() {
			line += fmt.Sprintf(" %s=%q", x.Name, x.Value)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffLines(got, want []string) string {
	var b strings.Builder
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
		if !g[l] {
			fmt.Fprintf(&b, "  missing: %s\n", l)
		}
	}
	for _, l := range got {
		if !w[l] {
			fmt.Fprintf(&b, "  extra:   %s\n", l)
		}
	}
	if b.Len() == 0 && strings.Join(got, "\n") != strings.Join(want, "\n") {
		fmt.Fprintf(&b, "  order differs:\n    got  %q\n    want %q\n", got, want)
	}
	return b.String()
}
