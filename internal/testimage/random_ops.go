package testimage

import (
	"path"
	"strings"
)

// capNetBindService is a VFS_CAP_REVISION_2 security.capability value
// granting cap_net_bind_service (bit 10) permitted and effective.
var capNetBindService = []byte{
	0x01, 0x00, 0x00, 0x02, // magic 0x02000000 | VFS_CAP_FLAGS_EFFECTIVE, little endian
	0x00, 0x04, 0x00, 0x00, // permitted[0]: 1<<10
	0x00, 0x00, 0x00, 0x00, // inheritable[0]
	0x00, 0x00, 0x00, 0x00, // permitted[1]
	0x00, 0x00, 0x00, 0x00, // inheritable[1]
}

// CapNetBindService returns a security.capability xattr value (v2 format)
// granting cap_net_bind_service, as `setcap cap_net_bind_service=ep` does.
func CapNetBindService() []byte { return append([]byte(nil), capNetBindService...) }

func (g *gen) ownerOpt() Opt {
	owners := [][2]int{{0, 0}, {0, 0}, {0, 0}, {1000, 1000}, {33, 33}, {65534, 65534}, {1, 2}}
	o := owners[g.r.IntN(len(owners))]
	return Owner(o[0], o[1])
}

func (g *gen) dirOpts() []Opt {
	opts := []Opt{Mode(g.pick([]int64{0o755, 0o755, 0o755, 0o700, 0o1777, 0o750, 0o2775})), g.ownerOpt(), MTime(g.mtime())}
	if g.r.IntN(10) == 0 {
		opts = append(opts, Xattr("user.dir", []byte("d"+g.randText(4))))
	}
	return opts
}

func (g *gen) file(p string) Entry {
	opts := []Opt{
		Mode(g.pick([]int64{0o644, 0o644, 0o644, 0o755, 0o600, 0o444, 0o640, 0o4755, 0o2755, 0o6711})),
		g.ownerOpt(), MTime(g.mtime()),
	}
	switch g.r.IntN(12) {
	case 0:
		opts = append(opts, Xattr("user.comment", []byte(g.randText(1+g.r.IntN(40)))))
	case 1:
		opts = append(opts, Xattr("security.capability", CapNetBindService()))
	case 2:
		opts = append(opts, Xattr("user.bin", []byte{0, 1, 2, 0xff, 0}), Xattr("user.b", []byte("2")))
	}
	return File(p, g.content(), opts...)
}

func (g *gen) content() string {
	switch n := g.r.IntN(40); {
	case n < 5:
		return ""
	case n == 5:
		return g.randText(64<<10 + g.r.IntN(140<<10))
	default:
		return g.randText(1 + g.r.IntN(2000))
	}
}

func (g *gen) randText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n=:/-_."
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

func (g *gen) symlinkTarget(parent string) string {
	files := g.pathsOf(func(_ string, k kind) bool { return k != kDir })
	switch n := g.r.IntN(4); {
	case n == 0 || len(files) == 0:
		return "does/not/exist"
	case n == 1:
		return "/" + files[g.r.IntN(len(files))]
	default:
		return relPath(parent, files[g.r.IntN(len(files))])
	}
}

func relPath(fromDir, to string) string {
	up := 0
	if fromDir != "" {
		up = strings.Count(fromDir, "/") + 1
	}
	return strings.Repeat("../", up) + to
}

// hardlinkAt makes p a hardlink to an existing file (or, rarely, symlink)
// and pins the target for the rest of the layer.
func (g *gen) hardlinkAt(p string) {
	want := func(k kind) bool { return k == kFile }
	if g.r.IntN(8) == 0 {
		want = func(k kind) bool { return k == kSymlink }
	}
	c := g.pathsOf(func(q string, k kind) bool { return want(k) && !g.underDeleted(q) && q != p })
	if len(c) == 0 {
		g.emit(g.file(p), kFile)
		return
	}
	target := c[g.r.IntN(len(c))]
	g.touch(target)
	g.emit(Hardlink(p, target), g.state[target])
}

func (g *gen) hardlink() { g.hardlinkAt(path.Join(g.pickDirForNew(), g.freshName())) }

func (g *gen) rewrite() {
	if p, ok := g.pickLower(func(k kind) bool { return k == kFile }); ok {
		g.emit(g.file(p), kFile)
		return
	}
	g.add()
}

func (g *gen) whiteout() {
	p, ok := g.pickLower(func(kind) bool { return true })
	if !ok {
		g.add()
		return
	}
	g.out = append(g.out, Whiteout(p))
	g.touch(p)
	g.deleted[p] = true
	g.removeUnder(p, true)
}

func (g *gen) opaque() {
	p, ok := g.pickLower(func(k kind) bool { return k == kDir })
	if !ok {
		g.add()
		return
	}
	g.emit(Dir(p, g.dirOpts()...), kDir)
	g.out = append(g.out, Opaque(p))
	g.removeUnder(p, false)
	for i := g.r.IntN(3); i >= 0; i-- {
		g.emit(g.file(path.Join(p, g.freshName())), kFile)
	}
}

func (g *gen) replace() {
	p, ok := g.pickLower(func(k kind) bool { return k != kOther })
	if !ok {
		g.add()
		return
	}
	switch g.state[p] {
	case kDir:
		if g.r.IntN(2) == 0 {
			g.emit(g.file(p), kFile)
		} else {
			g.emit(Symlink(p, "replaced", MTime(g.mtime())), kSymlink)
		}
	default:
		g.emit(Dir(p, g.dirOpts()...), kDir)
	}
}

func (g *gen) rechmod() {
	if p, ok := g.pickLower(func(k kind) bool { return k == kDir }); ok {
		g.emit(Dir(p, g.dirOpts()...), kDir)
		return
	}
	g.add()
}
