package main

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/overlay"
	"github.com/urfave/cli/v2"
)

type entryJSON struct {
	Path   string            `json:"path"`
	Type   string            `json:"type"`
	Mode   string            `json:"mode"`
	UID    uint32            `json:"uid"`
	GID    uint32            `json:"gid"`
	Size   int64             `json:"size"`
	MTime  string            `json:"mtime"`
	Target string            `json:"target,omitempty"`
	Rdev   string            `json:"rdev,omitempty"`
	Inode  uint64            `json:"inode,omitempty"`
	Nlink  uint32            `json:"nlink,omitempty"`
	Layer  *int              `json:"layer,omitempty"`
	Xattrs map[string]string `json:"xattrs,omitempty"`
	Link   string            `json:"hardlinkTo,omitempty"`

	fileMode fs.FileMode // for humans: type and permission letters
}

type eventJSON struct {
	Layer  int        `json:"layer"`
	Digest string     `json:"digest"`
	Event  string     `json:"event"`
	By     string     `json:"by,omitempty"`
	Entry  *entryJSON `json:"entry,omitempty"`
}

type pathJSON struct {
	Path    string      `json:"path"`
	Merged  *entryJSON  `json:"merged"` // null when absent from the merged view
	History []eventJSON `json:"history"`
}

func inspectPath(c *cli.Context, img *cache.Image, n int, p string) error {
	tree, err := mergeImage(c.Context, img, n)
	if err != nil {
		return err
	}
	layers, err := img.Indexes(c.Context)
	if err != nil {
		return err
	}
	if n > 0 {
		layers = layers[:n]
	}
	events, err := overlay.History(layers, p)
	if err != nil {
		return usageError(err) // History names the path
	}
	out := pathJSON{Path: "/" + strings.Trim(p, "/"), History: []eventJSON{}}
	if node := tree.Get(p); node != nil {
		out.Merged = nodeJSON(out.Path, node)
	}
	for _, e := range events {
		ev := eventJSON{Layer: e.Layer, Digest: img.Layers[e.Layer].Digest.String(), Event: e.Kind.String(), By: e.By}
		if e.Entry != nil {
			ev.Entry = layerEntryJSON(e.Entry)
		}
		out.History = append(out.History, ev)
	}
	if out.Merged == nil && len(out.History) == 0 {
		if n > 0 {
			return fmt.Errorf("%s: no such path in the first %d of the %d layers of %s", out.Path, n, len(img.Layers), img.Ref)
		}
		return fmt.Errorf("%s: no such path in any layer of %s", out.Path, img.Ref)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	printPath(c.App.Writer, img, out)
	return nil
}

func nodeJSON(p string, n *overlay.Node) *entryJSON {
	sec, nsec := n.MTimeUnix()
	layer := n.Layer()
	e := &entryJSON{Path: p, Type: n.Type().String(), Mode: fmt.Sprintf("%04o", n.Mode()), UID: n.UID(), GID: n.GID(),
		Size: n.Size(), MTime: modTime(sec, nsec), Target: n.Target(), Inode: n.StIno(), Nlink: n.Nlink(), Layer: &layer,
		Xattrs: xattrMap(n.Xattrs()), fileMode: n.FileMode()}
	if t := n.Type(); t == overlay.TypeChar || t == overlay.TypeBlock {
		ma, mi := n.Dev()
		e.Rdev = fmt.Sprintf("%d:%d", ma, mi)
	}
	return e
}

func layerEntryJSON(x *overlay.Entry) *entryJSON {
	e := &entryJSON{Path: x.Name, Type: x.Type.String(), Mode: fmt.Sprintf("%04o", x.Mode), UID: x.UID, GID: x.GID,
		Size: x.Size, MTime: modTime(x.MTime, x.MTimeNsec), Xattrs: xattrMap(x.Xattrs)}
	switch x.Type {
	case overlay.TypeSymlink:
		e.Target = x.Linkname
	case overlay.TypeHardlink:
		e.Link = x.Linkname
	case overlay.TypeChar, overlay.TypeBlock:
		e.Rdev = fmt.Sprintf("%d:%d", x.Devmajor, x.Devminor)
	}
	return e
}

func xattrMap(xs []overlay.Xattr) map[string]string {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[string]string, len(xs))
	for _, x := range xs {
		m[x.Name] = showValue(x.Value)
	}
	return m
}

// showValue prints an xattr value as text when it is printable, else as
// 0x-prefixed hex (security.capability is binary).
func showValue(v string) string {
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("0x%x", v)
		}
	}
	return v
}

func printPath(w io.Writer, img *cache.Image, out pathJSON) {
	fmt.Fprintf(w, "path      %s\n", out.Path)
	if m := out.Merged; m != nil {
		fmt.Fprintf(w, "type      %s\nmode      %s\nowner     %d:%d\nsize      %d\nmtime     %s\n",
			m.Type, fmt.Sprintf("%s (%s)", m.Mode, m.fileMode), m.UID, m.GID, m.Size, m.MTime)
		if m.Target != "" {
			fmt.Fprintf(w, "target    %s\n", m.Target)
		}
		if m.Rdev != "" {
			fmt.Fprintf(w, "device    %s\n", m.Rdev)
		}
		fmt.Fprintf(w, "inode     %d (%d links)\nfrom      layer %s\n", m.Inode, m.Nlink, describeLayer(img, *m.Layer))
		for _, name := range sortedKeys(m.Xattrs) {
			fmt.Fprintf(w, "xattr     %s=%s\n", name, m.Xattrs[name])
		}
	} else {
		fmt.Fprintf(w, "merged    absent\n")
	}
	fmt.Fprintf(w, "history\n")
	for _, e := range out.History {
		fmt.Fprintf(w, "  layer %-3d %-10s %s\n", e.Layer, e.Event, eventDetail(e))
	}
}

func eventDetail(e eventJSON) string {
	switch {
	case e.By != "":
		return "by " + e.By
	case e.Entry == nil:
		return "(as a parent directory)"
	case e.Entry.Link != "":
		return "hardlink to " + e.Entry.Link
	}
	d := fmt.Sprintf("%s %s %d:%d", e.Entry.Type, e.Entry.Mode, e.Entry.UID, e.Entry.GID)
	if e.Entry.Type == "file" {
		d += fmt.Sprintf(" %d bytes", e.Entry.Size)
	}
	if e.Entry.Target != "" {
		d += " -> " + e.Entry.Target
	}
	return d
}
