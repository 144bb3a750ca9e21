package fusefs

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// Limits the kernel puts on extended attributes (XATTR_NAME_MAX,
// XATTR_SIZE_MAX).
const (
	xattrNameMax = 255
	xattrSizeMax = 65536
)

// hiddenXattr returns why x cannot be served on n through FUSE, or "" if
// it can. Everything listed must also be readable, or a reader that lists
// then gets each name (mkfs.ext4 -d does) fails on the whole file.
// malformed reports a value the image got wrong, as opposed to a name the
// kernel refuses by rule.
func hiddenXattr(n *overlay.Node, x *overlay.Xattr) (reason string, malformed bool) {
	switch {
	case strings.HasPrefix(x.Name, "trusted."):
		return "trusted.* attributes are readable only with CAP_SYS_ADMIN", false
	case strings.HasPrefix(x.Name, "user.") && n.Type() != overlay.TypeRegular && n.Type() != overlay.TypeDir:
		return "user.* attributes exist only on regular files and directories", false
	case len(x.Name) > xattrNameMax:
		return "name longer than 255 bytes", true
	case len(x.Value) > xattrSizeMax:
		return "value larger than 64 KiB", true
	case x.Name == "security.capability" && !validCapability(x.Value):
		return "malformed security.capability (not a vfs_cap_data v2 or v3)", true
	case (x.Name == "system.posix_acl_access" || x.Name == "system.posix_acl_default") && !validACL(x.Value):
		return "malformed POSIX ACL", true
	}
	return "", false
}

// validCapability reports whether v is a vfs_cap_data the kernel returns
// from getxattr: revision 2 (20 bytes) or 3 (24 bytes, with a root uid).
// The kernel answers EINVAL for anything else, revision 1 included.
func validCapability(v string) bool {
	if len(v) < 4 {
		return false
	}
	rev := binary.LittleEndian.Uint32([]byte(v[:4])) & 0xFF000000
	return (len(v) == 20 && rev == 0x02000000) || (len(v) == 24 && rev == 0x03000000)
}

// validACL reports whether v decodes as the kernel's posix_acl_xattr: a
// version 2 header, then 8-byte entries with known tags and valid ids.
// An empty ACL is refused too: the kernel would list it but answer ENODATA.
func validACL(v string) bool {
	if len(v) < 4+8 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32([]byte(v[:4])) != 2 {
		return false
	}
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag := binary.LittleEndian.Uint16([]byte(e[:2]))
		id := binary.LittleEndian.Uint32([]byte(e[4:8]))
		switch tag {
		case 0x01, 0x04, 0x10, 0x20: // USER_OBJ, GROUP_OBJ, MASK, OTHER
		case 0x02, 0x08: // USER, GROUP
			if id == ^uint32(0) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// scanXattrs reports whether any node has an attribute to serve, and logs
// each one left out, once: malformed values as warnings (the image is
// wrong), names the kernel refuses at debug level.
func scanXattrs(t *overlay.Tree, log *slog.Logger) bool {
	if !t.HasXattrs() {
		return false
	}
	type hidden struct {
		ino       uint64
		name      string
		reason    string
		malformed bool
	}
	var any bool
	var left []hidden
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		n := t.Node(ino)
		xs := n.Xattrs()
		for i := range xs {
			if reason, bad := hiddenXattr(n, &xs[i]); reason != "" {
				left = append(left, hidden{ino, xs[i].Name, reason, bad})
			} else {
				any = true
			}
		}
	}
	if len(left) > 0 {
		paths := firstPaths(t)
		for _, h := range left {
			level := slog.LevelDebug
			if h.malformed {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "leaving out extended attribute", "path", paths[h.ino], "name", h.name, "reason", h.reason)
		}
	}
	return any
}

// firstPaths maps each inode to its first path in walk order (for logs).
func firstPaths(t *overlay.Tree) map[uint64]string {
	m := make(map[uint64]string, t.Len())
	t.Walk(func(p string, n *overlay.Node) error {
		if _, ok := m[n.Ino()]; !ok {
			m[n.Ino()] = "/" + p
		}
		return nil
	})
	return m
}

func (f *rawFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	f.stats.add(opListXAttr)
	if !f.xattrs && f.tune.enosys {
		return 0, fuse.ENOSYS // no attributes anywhere: the kernel stops asking
	}
	n := f.node(h.NodeId)
	if n == nil {
		return 0, fuse.ENOENT
	}
	return listXAttr(n, dest)
}

func listXAttr(n *overlay.Node, dest []byte) (uint32, fuse.Status) {
	xs := n.Xattrs()
	size := 0
	for i := range xs {
		if r, _ := hiddenXattr(n, &xs[i]); r == "" {
			size += len(xs[i].Name) + 1
		}
	}
	if size > len(dest) {
		return uint32(size), fuse.ERANGE // also the answer to a size query
	}
	b := dest[:0]
	for i := range xs {
		if r, _ := hiddenXattr(n, &xs[i]); r == "" {
			b = append(append(b, xs[i].Name...), 0)
		}
	}
	return uint32(size), fuse.OK
}

func (f *rawFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	f.stats.add(opGetXAttr)
	if !f.xattrs && f.tune.enosys {
		return 0, fuse.ENOSYS
	}
	n := f.node(h.NodeId)
	if n == nil {
		return 0, fuse.ENOENT
	}
	return getXAttr(n, name, dest)
}

func getXAttr(n *overlay.Node, name string, dest []byte) (uint32, fuse.Status) {
	v, ok := n.Xattr(name)
	if !ok {
		return 0, fuse.ENOATTR
	}
	if r, _ := hiddenXattr(n, &overlay.Xattr{Name: name, Value: v}); r != "" {
		return 0, fuse.ENOATTR
	}
	if len(v) > len(dest) {
		return uint32(len(v)), fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}
