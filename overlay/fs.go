package overlay

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"
)

// FS returns an io/fs view of the tree whose files read their content
// through r. Open and Stat follow symlinks inside the tree (an absolute
// target is taken from the tree's root, and ".." stops at the root); Lstat
// and ReadLink do not. Sys() of a FileInfo is the *Node.
func (t *Tree) FS(r LayerReader) fs.FS {
	return &treeFS{t: t, r: r}
}

type treeFS struct {
	t *Tree
	r LayerReader
}

var (
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

const maxSymlinkHops = 40

func (f *treeFS) Open(name string) (fs.File, error) {
	n, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := fileInfo{name: path.Base(name), n: n}
	switch n.Type() {
	case TypeDir:
		return &dirFile{fs: f, fi: fi}, nil
	case TypeRegular:
		return &regFile{fi: fi, r: io.NewSectionReader(nodeReader{n, f.r}, 0, n.Size())}, nil
	}
	return &otherFile{fi: fi}, nil
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

func (f *treeFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

func (f *treeFS) ReadLink(name string) (string, error) {
	n, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.Type() != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.Target(), nil
}

// resolve walks name from the root, following symlinks in the directory
// part always and in the last component when follow is set.
func (f *treeFS) resolve(op, name string, follow bool) (*Node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fail := func(err error) (*Node, error) { return nil, &fs.PathError{Op: op, Path: name, Err: err} }
	var stack []*Node // directories from the root to the current one
	cur, rest, hops := f.t.Root(), name, 0
	if name == "." {
		rest = ""
	}
	for rest != "" {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
			continue
		}
		if cur.Type() != TypeDir {
			return fail(syscall.ENOTDIR)
		}
		next := f.t.Lookup(cur, c)
		if next == nil {
			return fail(fs.ErrNotExist)
		}
		if next.Type() != TypeSymlink || (rest == "" && !follow) {
			stack, cur = append(stack, cur), next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return fail(syscall.ELOOP)
		}
		target := next.Target()
		if strings.HasPrefix(target, "/") {
			cur, stack = f.t.Root(), stack[:0]
		}
		rest = strings.TrimSuffix(target+"/"+rest, "/")
	}
	return cur, nil
}

// nodeReader adapts Node.ReadAt to io.ReaderAt.
type nodeReader struct {
	n *Node
	r LayerReader
}

func (nr nodeReader) ReadAt(p []byte, off int64) (int, error) { return nr.n.ReadAt(nr.r, p, off) }

type fileInfo struct {
	name string
	n    *Node
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.n.Size() }
func (fi fileInfo) Mode() fs.FileMode  { return fi.n.FileMode() }
func (fi fileInfo) ModTime() time.Time { return fi.n.MTime() }
func (fi fileInfo) IsDir() bool        { return fi.n.Type() == TypeDir }
func (fi fileInfo) Sys() any           { return fi.n }

type regFile struct {
	fi fileInfo
	r  *io.SectionReader
}

func (fi fileInfo) String() string { return fs.FormatFileInfo(fi) }

func (f *regFile) Stat() (fs.FileInfo, error)                { return f.fi, nil }
func (f *regFile) Read(p []byte) (int, error)                { return f.r.Read(p) }
func (f *regFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }
func (f *regFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *regFile) Close() error                              { return nil }

func (f *otherFile) Stat() (fs.FileInfo, error) { return f.fi, nil }
func (f *otherFile) Read([]byte) (int, error)   { return 0, io.EOF } // no content in a tree
func (f *otherFile) Close() error               { return nil }

func (f *dirFile) Stat() (fs.FileInfo, error) { return f.fi, nil }
func (f *dirFile) Read([]byte) (int, error)   { return 0, errors.New("is a directory") }
func (f *dirFile) Close() error               { return nil }

func (d dirEntry) Name() string               { return d.fi.name }
func (d dirEntry) IsDir() bool                { return d.fi.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.fi.Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.fi, nil }
func (d dirEntry) String() string             { return fs.FormatDirEntry(d) }

type otherFile struct{ fi fileInfo }

type dirFile struct {
	fs  *treeFS
	fi  fileInfo
	pos int
}

type dirEntry struct{ fi fileInfo }

// ReadDir lists the directory in name order, as fs.ReadDirFile specifies.
func (f *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	kids := f.fs.t.Children(f.fi.n)[f.pos:]
	if count > 0 && len(kids) == 0 {
		return nil, io.EOF
	}
	if count > 0 && count < len(kids) {
		kids = kids[:count]
	}
	out := make([]fs.DirEntry, len(kids))
	for i, k := range kids {
		out[i] = dirEntry{fileInfo{name: k.Name, n: f.fs.t.Node(k.Ino)}}
	}
	f.pos += len(kids)
	return out, nil
}
