package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// node is one path of the root filesystem, relative to it ("usr/bin/ls").
type node struct {
	rel   string
	fi    fs.FileInfo
	layer int
	link  string // for a later member of a hardlink group: the first path
}

// scanTree lists every path under root in lexical order (parents first),
// assigned to a layer by assign. A later member of a hardlink group goes
// to the layer of the first and is marked as a link to it.
func scanTree(root string, assign func(rel string) int) ([]node, error) {
	type key struct{ dev, ino uint64 }
	first := map[key]node{}
	var nodes []node
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := node{rel: filepath.ToSlash(rel), fi: fi, layer: assign(filepath.ToSlash(rel))}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := key{uint64(st.Dev), st.Ino}
			if f, ok := first[k]; ok {
				n.layer, n.link = f.layer, f.rel
			} else {
				first[k] = n
			}
		}
		nodes = append(nodes, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", root, err)
	}
	return nodes, nil
}

// layerWriter writes one layer's tar stream, adding each entry's parent
// directories before it once, as docker's layer diffs carry them.
type layerWriter struct {
	root    string
	tw      *tar.Writer
	buf     bytes.Buffer
	written map[string]bool
	infos   map[string]fs.FileInfo // every directory of the tree, by rel
}

func newLayerWriter(root string, dirs map[string]fs.FileInfo) *layerWriter {
	w := &layerWriter{root: root, written: map[string]bool{}, infos: dirs}
	w.tw = tar.NewWriter(&w.buf)
	return w
}

func (w *layerWriter) add(n node) error {
	if err := w.parents(n.rel); err != nil {
		return err
	}
	if w.written[n.rel] {
		return nil
	}
	w.written[n.rel] = true
	return w.entry(n)
}

func (w *layerWriter) parents(rel string) error {
	dir := path.Dir(rel)
	if dir == "." || w.written[dir] {
		return nil
	}
	if err := w.parents(dir); err != nil {
		return err
	}
	w.written[dir] = true
	fi, ok := w.infos[dir]
	if !ok {
		return fmt.Errorf("no directory %s in the tree", dir)
	}
	return w.entry(node{rel: dir, fi: fi})
}

// entry writes one header (and the file's bytes).
func (w *layerWriter) entry(n node) error {
	full := filepath.Join(w.root, filepath.FromSlash(n.rel))
	target := ""
	if n.fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(full)
		if err != nil {
			return err
		}
		target = t
	}
	h, err := tar.FileInfoHeader(n.fi, target)
	if err != nil {
		return fmt.Errorf("header of %s: %w", n.rel, err)
	}
	normalize(h, n)
	if err := addXattrs(h, full); err != nil {
		return err
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %s: %w", n.rel, err)
	}
	if h.Typeflag != tar.TypeReg || h.Size == 0 {
		return nil
	}
	return copyFile(w.tw, full)
}

func normalize(h *tar.Header, n node) {
	h.Name = n.rel
	if n.fi.IsDir() {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	h.Format = tar.FormatPAX
	h.ModTime = n.fi.ModTime().Truncate(time.Second)
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	if n.link != "" {
		h.Typeflag, h.Linkname, h.Size = tar.TypeLink, n.link, 0
	}
}

func addXattrs(h *tar.Header, full string) error {
	sz, err := unix.Llistxattr(full, nil)
	if err != nil || sz == 0 {
		return nil // no xattrs, or a file system without them
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(full, buf)
	if err != nil {
		return fmt.Errorf("listing xattrs of %s: %w", full, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(full, name, v)
		if err != nil {
			return fmt.Errorf("reading xattr %s of %s: %w", name, full, err)
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+name] = string(v[:k])
	}
	return nil
}

func copyFile(w io.Writer, full string) error {
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("copying %s: %w", full, err)
	}
	return nil
}

func (w *layerWriter) close() ([]byte, error) {
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}
