package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"strings"
	"time"
)

// Epoch is the default mtime of every entry, so output is deterministic.
var Epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Entry is one tar entry: a header and, for regular files, its content.
type Entry struct {
	Header tar.Header
	Body   []byte
}

// Opt changes an entry's header.
type Opt func(*tar.Header)

// Mode sets the permission bits, including setuid (04000), setgid (02000)
// and sticky (01000), as in tar.Header.Mode.
func Mode(m int64) Opt { return func(h *tar.Header) { h.Mode = m } }

// Owner sets the numeric uid and gid.
func Owner(uid, gid int) Opt { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

// Names sets the user and group names (which OCI tools ignore).
func Names(uname, gname string) Opt {
	return func(h *tar.Header) { h.Uname, h.Gname = uname, gname }
}

// MTime sets the modification time (whole seconds survive exactly).
func MTime(t time.Time) Opt { return func(h *tar.Header) { h.ModTime = t } }

// Xattr adds an extended attribute as a PAX SCHILY.xattr record; value is
// kept byte for byte (binary values such as security.capability work).
func Xattr(name string, value []byte) Opt {
	return func(h *tar.Header) { setPAX(h, "SCHILY.xattr."+name, string(value)) }
}

// LibarchiveXattr adds an extended attribute the way libarchive (bsdtar)
// writes it: LIBARCHIVE.xattr.NAME with a base64 value.
func LibarchiveXattr(name, base64Value string) Opt {
	return func(h *tar.Header) { setPAX(h, "LIBARCHIVE.xattr."+name, base64Value) }
}

func setPAX(h *tar.Header, k, v string) {
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	h.PAXRecords[k] = v
}

func header(typ byte, name string, mode int64, opts []Opt) tar.Header {
	h := tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		ModTime:  Epoch,
		Format:   tar.FormatPAX,
	}
	for _, o := range opts {
		o(&h)
	}
	return h
}

// Dir is a directory (default mode 0755, root-owned). The tar name gets a
// trailing slash, as docker and buildkit write it.
func Dir(name string, opts ...Opt) Entry {
	return Entry{Header: header(tar.TypeDir, strings.TrimSuffix(name, "/")+"/", 0o755, opts)}
}

// File is a regular file with content (default mode 0644).
func File(name, content string, opts ...Opt) Entry {
	h := header(tar.TypeReg, name, 0o644, opts)
	h.Size = int64(len(content))
	return Entry{Header: h, Body: []byte(content)}
}

// Symlink is a symbolic link name → target (mode 0777).
func Symlink(name, target string, opts ...Opt) Entry {
	h := header(tar.TypeSymlink, name, 0o777, opts)
	h.Linkname = target
	return Entry{Header: h}
}

// Hardlink is a hard link name → target, target being a path inside the
// image (this layer or a lower one).
func Hardlink(name, target string, opts ...Opt) Entry {
	h := header(tar.TypeLink, name, 0o644, opts)
	h.Linkname = target
	return Entry{Header: h}
}

// Whiteout hides name from lower layers: an empty file dir/.wh.base.
func Whiteout(name string, opts ...Opt) Entry {
	dir, base := path.Split(strings.TrimSuffix(name, "/"))
	return Entry{Header: header(tar.TypeReg, dir+".wh."+base, 0o644, opts)}
}

// Opaque hides every lower-layer child of dir: dir/.wh..wh..opq.
func Opaque(dir string, opts ...Opt) Entry {
	dir = strings.TrimSuffix(dir, "/")
	if dir != "" {
		dir += "/"
	}
	return Entry{Header: header(tar.TypeReg, dir+".wh..wh..opq", 0o644, opts)}
}

// CharDev is a character device (default mode 0666).
func CharDev(name string, major, minor int64, opts ...Opt) Entry {
	h := header(tar.TypeChar, name, 0o666, opts)
	h.Devmajor, h.Devminor = major, minor
	return Entry{Header: h}
}

// BlockDev is a block device (default mode 0660).
func BlockDev(name string, major, minor int64, opts ...Opt) Entry {
	h := header(tar.TypeBlock, name, 0o660, opts)
	h.Devmajor, h.Devminor = major, minor
	return Entry{Header: h}
}

// Fifo is a named pipe (default mode 0644).
func Fifo(name string, opts ...Opt) Entry {
	return Entry{Header: header(tar.TypeFifo, name, 0o644, opts)}
}

// Raw is an entry written exactly as given (hostile names, odd types).
// If body is not nil and hdr.Size is 0, Size is set to len(body).
func Raw(hdr tar.Header, body []byte) Entry {
	if hdr.Size == 0 && body != nil {
		hdr.Size = int64(len(body))
	}
	return Entry{Header: hdr, Body: body}
}

// Layer writes entries, in order, as an uncompressed tar stream.
// It panics on a header archive/tar cannot encode: fixtures are code, and
// a fixture that cannot be written is a bug in the test.
func Layer(entries ...Entry) []byte {
	b, err := WriteTar(entries)
	if err != nil {
		panic(err)
	}
	return b
}

// WriteTar is Layer returning its error instead of panicking.
func WriteTar(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range entries {
		e := &entries[i]
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("writing tar header %q: %w", h.Name, err)
		}
		if len(e.Body) > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, fmt.Errorf("writing tar body %q: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return buf.Bytes(), nil
}
