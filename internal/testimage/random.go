package testimage

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"
)

// Random returns nLayers uncompressed tar layers of about nEntries entries
// each, the same for the same seed. See RandomEntries.
func Random(t TB, seed uint64, nLayers, nEntries int) [][]byte {
	t.Helper()
	var out [][]byte
	for i, es := range RandomEntries(seed, nLayers, nEntries) {
		b, err := WriteTar(es)
		if err != nil {
			t.Fatalf("writing random layer %d (seed %d): %v", i, seed, err)
		}
		out = append(out, b)
	}
	return out
}

// RandomEntries makes a realistic, valid layer stack: directories with
// varied modes and owners, files (empty, small, a few over 64 KiB, some
// setuid/setgid, some with user.* or security.capability xattrs),
// symlinks (relative, absolute, dangling), hardlinks within a layer and to
// files of lower layers (and now and then to symlinks), fifos and device
// nodes; and in upper layers: rewritten files, whiteouts of files and
// whole directories, opaque directories with new children, file↔directory
// replacements and directory attribute changes.
//
// Every stack it makes has one meaning under the OCI rules and under a
// plain in-order extraction (umoci's), so it can be used for differential
// tests: a path is written at most once per layer, a whiteout never names
// a path the same layer writes, a parent directory exists (in this layer
// or a lower one) before a child is written, and a hardlink's target is
// never changed later in its layer.
func RandomEntries(seed uint64, nLayers, nEntries int) [][]Entry {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), state: map[string]kind{}}
	var layers [][]Entry
	for l := 0; l < nLayers; l++ {
		g.startLayer(l)
		for len(g.out) < nEntries {
			g.step()
		}
		layers = append(layers, g.out)
	}
	return layers
}

type kind byte

const (
	kDir kind = iota + 1
	kFile
	kSymlink
	kOther
)

type gen struct {
	r     *rand.Rand
	state map[string]kind // merged view so far, root excluded
	keys  []string        // sorted keys of state
	layer int
	out   []Entry
	// dirty paths were written (or used as a link target) in this layer,
	// or have such a descendant; deleted paths were whited out in it.
	dirty, deleted map[string]bool
	counter        int
}

func (g *gen) startLayer(l int) {
	g.layer, g.out = l, nil
	g.dirty, g.deleted = map[string]bool{}, map[string]bool{}
}

func (g *gen) touch(p string) {
	for q := p; q != "." && q != "" && !g.dirty[q]; q = path.Dir(q) {
		g.dirty[q] = true
	}
}

func (g *gen) set(p string, k kind) {
	if _, ok := g.state[p]; !ok {
		i, _ := slices.BinarySearch(g.keys, p)
		g.keys = slices.Insert(g.keys, i, p)
	}
	g.state[p] = k
}

// removeUnder deletes p's descendants, and p itself if self.
func (g *gen) removeUnder(p string, self bool) {
	if self {
		if i, ok := slices.BinarySearch(g.keys, p); ok {
			g.keys = slices.Delete(g.keys, i, i+1)
			delete(g.state, p)
		}
	}
	i, _ := slices.BinarySearch(g.keys, p+"/")
	j := i
	for j < len(g.keys) && strings.HasPrefix(g.keys[j], p+"/") {
		delete(g.state, g.keys[j])
		j++
	}
	g.keys = slices.Delete(g.keys, i, j)
}

func (g *gen) step() {
	if g.layer == 0 || g.r.IntN(100) < 50 {
		g.add()
		return
	}
	switch n := g.r.IntN(50); {
	case n < 10:
		g.rewrite()
	case n < 20:
		g.whiteout()
	case n < 25:
		g.opaque()
	case n < 33:
		g.replace()
	case n < 38:
		g.rechmod()
	default:
		g.hardlink()
	}
}

func (g *gen) add() {
	parent := g.pickDirForNew()
	p := path.Join(parent, g.freshName())
	switch n := g.r.IntN(100); {
	case n < 25:
		g.emit(Dir(p, g.dirOpts()...), kDir)
	case n < 70:
		g.emit(g.file(p), kFile)
	case n < 82:
		g.emit(Symlink(p, g.symlinkTarget(parent), g.ownerOpt(), MTime(g.mtime())), kSymlink)
	case n < 92:
		g.hardlinkAt(p)
	case n < 96:
		g.emit(Fifo(p, Mode(g.pick([]int64{0o644, 0o600, 0o666})), g.ownerOpt(), MTime(g.mtime())), kOther)
	default:
		devs := [][2]int64{{1, 3}, {1, 5}, {1, 7}, {5, 0}, {4, 1}}
		d := devs[g.r.IntN(len(devs))]
		if g.r.IntN(5) == 0 {
			g.emit(BlockDev(p, 7, int64(g.r.IntN(8)), MTime(g.mtime())), kOther)
			return
		}
		g.emit(CharDev(p, d[0], d[1], g.ownerOpt(), MTime(g.mtime())), kOther)
	}
}

func (g *gen) emit(e Entry, k kind) {
	p := strings.TrimSuffix(e.Header.Name, "/")
	g.out = append(g.out, e)
	g.touch(p)
	if k == kDir && g.state[p] == kDir {
		return // a directory over a directory keeps its children
	}
	g.removeUnder(p, true)
	g.set(p, k)
}

func (g *gen) freshName() string {
	g.counter++
	bases := []string{"etc", "lib", "share", "data", "conf", "doc", "cache", "log", "app", "bin", "x", "with space", "ünï"}
	exts := []string{"", "", ".txt", ".conf", ".sh", ".so.1", ".d"}
	return fmt.Sprintf("%s%d%s", bases[g.r.IntN(len(bases))], g.counter, exts[g.r.IntN(len(exts))])
}

// pickDirForNew returns a directory (or "" for the root) that may get new
// children in this layer.
func (g *gen) pickDirForNew() string {
	dirs := g.pathsOf(func(p string, k kind) bool { return k == kDir && !g.underDeleted(p) })
	if len(dirs) == 0 || g.r.IntN(6) == 0 {
		return ""
	}
	return dirs[g.r.IntN(len(dirs))]
}

func (g *gen) underDeleted(p string) bool {
	for q := p; q != "." && q != ""; q = path.Dir(q) {
		if g.deleted[q] {
			return true
		}
	}
	return false
}

// pathsOf lists matching paths of the merged view, sorted.
func (g *gen) pathsOf(ok func(string, kind) bool) []string {
	var out []string
	for _, p := range g.keys {
		if ok(p, g.state[p]) {
			out = append(out, p)
		}
	}
	return out
}

// untouchedTree reports whether neither p nor anything under it was
// written in this layer.
func (g *gen) untouchedTree(p string) bool { return !g.dirty[p] }

func (g *gen) pickLower(want func(kind) bool) (string, bool) {
	c := g.pathsOf(func(p string, k kind) bool { return want(k) && g.untouchedTree(p) && !g.underDeleted(p) })
	if len(c) == 0 {
		return "", false
	}
	return c[g.r.IntN(len(c))], true
}

func (g *gen) mtime() time.Time {
	return Epoch.Add(time.Duration(g.layer)*time.Hour + time.Duration(g.r.IntN(3600))*time.Second)
}

func (g *gen) pick(xs []int64) int64 { return xs[g.r.IntN(len(xs))] }
