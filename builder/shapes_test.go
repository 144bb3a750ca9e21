package builder

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

// shape is a kind of tree sizing must get right.
type shape struct {
	name string
	make func(f *fixture, r *rand.Rand)
	// the estimate may exceed the used blocks by this many percent plus
	// this many blocks
	overPct    float64
	overBlocks uint64
}

var shapes = []shape{
	{"tiny-files", func(f *fixture, r *rand.Rand) {
		for i := range 20000 {
			f.file(fmt.Sprintf("d%02d/%s", i%20, name(i, 12)), randomBytes(r, 1+r.IntN(200)), 0o644)
		}
	}, 1, 64},
	{"huge-file", func(f *fixture, r *rand.Rand) {
		f.file("big", randomBytes(r, 200<<20+1234), 0o644)
		f.file("small", []byte("x"), 0o644)
	}, 1, 64},
	{"deep-tree", func(f *fixture, r *rand.Rand) {
		p := ""
		for i := range 300 {
			p += fmt.Sprintf("level%03d/", i)
			f.file(p+"file", randomBytes(r, r.IntN(9000)), 0o600)
		}
	}, 2, 64},
	{"long-symlinks", func(f *fixture, r *rand.Rand) {
		for i := range 6000 {
			n := 20 + r.IntN(200)
			if i%3 == 0 {
				n = 59 + i%2 // the fast/slow boundary
			}
			f.symlink(fmt.Sprintf("links/%s", name(i, 10)), strings.Repeat("t", n))
		}
	}, 1, 64},
	{"big-xattrs", func(f *fixture, r *rand.Rand) {
		for i := range 2000 {
			p := fmt.Sprintf("x/%s", name(i, 8))
			f.file(p, []byte("data"), 0o644)
			switch i % 3 {
			case 0: // in the inode
				f.xattr(p, "user.small", []byte("v"))
			case 1: // a block
				f.xattr(p, "user.big", randomBytes(r, 1500))
			case 2: // several, filling most of a block
				for j := range 3 {
					f.xattr(p, fmt.Sprintf("user.a%d", j), randomBytes(r, 1200))
				}
			}
		}
	}, 1, 64},
	{"wide-directory", func(f *fixture, r *rand.Rand) {
		for i := range 50000 {
			f.file("wide/"+name(i, 12), nil, 0o644)
		}
	}, 3, 64},
	{"rootfs-like", func(f *fixture, r *rand.Rand) {
		for d := range 40 {
			for i := range 100 {
				size := r.ExpFloat64() * 30000
				f.file(fmt.Sprintf("usr/lib/p%02d/%s.so", d, name(i, 1+r.IntN(30))), randomBytes(r, int(size)), 0o644)
			}
			f.file(fmt.Sprintf("usr/lib/p%02d/base.so", d), randomBytes(r, 5000), 0o755)
			f.hardlink(fmt.Sprintf("usr/bin/h%02d", d), fmt.Sprintf("usr/lib/p%02d/base.so", d))
			f.symlink(fmt.Sprintf("usr/bin/s%02d", d), fmt.Sprintf("../lib/p%02d", d))
		}
		f.file("usr/bin/su", []byte("su"), 0o4755)
		f.mknod("dev/null", 0o20666, 1, 3)
		f.mknod("dev/sda", 0o60660, 8, 0)
		f.mkdir("tmp", 0o1777)
		// hardlinked symlinks, short and long, with awkward names
		f.symlink("etc/alternatives/a \"quoted\" name", "/usr/bin/su")
		f.hardlink("etc/alternatives/second link", "etc/alternatives/a \"quoted\" name")
		f.hardlink("usr/bin/third", "etc/alternatives/a \"quoted\" name")
		f.symlink("usr/lib/long", strings.Repeat("../", 40)+"target")
		f.hardlink("usr/lib/long2", "usr/lib/long")
		f.symlink("etc/alternatives/back\\slash\ttab ünï", "x")
		f.hardlink("etc/alternatives/'single' quote", "etc/alternatives/back\\slash\ttab ünï")
	}, 2, 64},
}

// TestShapes builds each shape with no headroom and holds the estimate to
// the image: never short, little over; and the image to the source.
func TestShapes(t *testing.T) {
	requireE2fsprogs(t)
	testenv.RequireRoot(t) // owners, devices, loop mount
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			if testing.Short() && (s.name == "huge-file" || s.name == "wide-directory") {
				t.Skip("big shape; run without -short")
			}
			f := newFixture(t)
			s.make(f, rand.New(rand.NewPCG(1, uint64(len(s.name)))))
			res, img := buildDir(t, f.dir, Options{})
			checkEstimate(t, res, s.overPct, s.overBlocks)
			sameTree(t, f.dir, img)
		})
	}
}
