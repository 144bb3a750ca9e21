package fusefs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/fsload"
	"github.com/ocifs/ocifs/overlay"
)

// loadImage is a two-layer image with a bit of everything readers meet:
// small and medium files, a 16 MiB file, a sparse file, a 3,000-entry
// directory, a 30-deep path, symlinks (relative, absolute, dangling),
// hardlinks, devices, a fifo, user.* and security.capability attributes;
// the upper layer rewrites some files, so reads come from both layers.
func loadImage() *memImage {
	r := rand.New(rand.NewPCG(42, 42))
	var es []fentry
	var files []string
	for d := range 10 {
		dn := fmt.Sprintf("etc/d%02d", d)
		es = append(es, dir(dn, xattrEvery(d, 3, "user.dir", dn)...))
		for f := range 20 {
			p := fmt.Sprintf("%s/f%03d", dn, f)
			es = append(es, fileBytes(p, randomBytes(r.Uint64(), r.IntN(6000)), xattrEvery(f, 7, "user.comment", p)...))
			files = append(files, p)
		}
	}
	for i := range 30 {
		es = append(es, fileBytes(fmt.Sprintf("usr/lib/lib%02d.so", i), randomBytes(r.Uint64(), 64<<10+r.IntN(1500<<10))))
	}
	es = append(es, fileBytes("data/big", randomBytes(1, 16<<20)))
	sp := make([]byte, 8<<20)
	copy(sp[1<<20:], randomBytes(2, 70000))
	copy(sp[6<<20:], randomBytes(3, 4096))
	es = append(es, fileBytes("var/sparse", sp, sparse([2]int64{1 << 20, 70000}, [2]int64{6 << 20, 4096})))
	es = append(es, dir("wide"))
	for i := range 3000 {
		es = append(es, file(fmt.Sprintf("wide/entry-with-a-longer-name-%05d", i), fmt.Sprint(i)))
	}
	deep := "deep"
	for i := range 30 {
		deep = path.Join(deep, fmt.Sprintf("level%02d", i))
	}
	es = append(es, file(deep+"/file", "at the bottom"))
	for i := range 100 {
		target := []string{"../" + files[r.IntN(len(files))], "/etc/passwd", "does/not/exist"}[i%3]
		es = append(es, symlink(fmt.Sprintf("links/l%03d", i), target))
	}
	for i := range 20 {
		es = append(es, hardlink(fmt.Sprintf("hard/h%02d", i), files[i*7]))
	}
	es = append(es,
		file("bin/ping", "ELF", perm(0o4755), xattr("security.capability",
			"\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")),
		device("dev/null", overlay.TypeChar, 1, 3), device("dev/sda", overlay.TypeBlock, 8, 0, owner(0, 6)),
		fifo("run/initctl"))
	var upper []fentry
	for i := 0; i < len(files); i += 5 {
		upper = append(upper, fileBytes(files[i], randomBytes(r.Uint64(), r.IntN(200000)), owner(1000, 1000)))
	}
	return new(memImage).addLayer(es...).addLayer(upper...)
}

func xattrEvery(i, n int, name, value string) []opt {
	if i%n == 0 {
		return []opt{xattr(name, value)}
	}
	return nil
}

// TestLoad runs 16 readers doing random lookups (existing and missing
// names), lstats, readlinks, xattr reads, readdirs and reads at random
// offsets, plus a walker listing the whole tree, every answer checked
// against the merged tree, for OCIFS_TEST_LOAD_DURATION (default 30 s,
// 3 s with -short) split between two mounts: content from memory, and
// content from files with Options.Prefetch on. Meanwhile the
// server keeps telling the kernel to forget entries, attributes and
// pages (FUSE notify), so requests keep reaching the handlers, and the
// backing files' pages are dropped; run it under -race.
func TestLoad(t *testing.T) {
	d := fsload.DurationFromEnv(30 * time.Second)
	if testing.Short() {
		d = 3 * time.Second
	}
	m := loadImage()
	tree := m.merge(t)
	files := fileBacked(t, m)
	cases := []struct {
		name    string
		content overlay.LayerReader
		backing []*os.File // whose cached pages the churn drops
		opts    Options
	}{
		{"memory", m, nil, Options{}},
		{"files-prefetch", &splicingLayerFile{*files}, files.files, Options{Prefetch: true}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, mnt := mountTree(t, tree, c.content, c.opts)
			exp := fsload.NewExpect(tree, c.content)
			if paths, dirs, files, links := exp.Counts(); paths < 3000 || dirs < 40 || files < 3000 || links < 100 {
				t.Fatalf("fixture too small: %d paths, %d dirs, %d files, %d links", paths, dirs, files, links)
			}
			res := fsload.Run(context.Background(), fsload.Config{
				Root: mnt, Readers: 16, Walkers: 1, Duration: d / 2, Seed: uint64(i), Direct: true,
				Churn: forgetter(srv, tree, c.backing),
			}, exp)
			t.Logf("%s\nserver: %s", res, srv.Stats())
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if res.Walks == 0 || res.Ops["read"] == 0 || res.Ops["miss"] == 0 || res.Ops["xattr"] == 0 {
				t.Errorf("the load did too little: %v", res.Ops)
			}
		})
	}
}

// forgetter returns a churn function that makes the kernel forget a
// random path's entry and its inode's attributes and pages, and drops
// the cached pages of a random backing file (so that reads from it meet
// uncached pages, as after a reboot).
func forgetter(srv *Server, tree *overlay.Tree, backing []*os.File) func() {
	type entry struct {
		parent, ino uint64
		name        string
	}
	var ents []entry
	tree.Walk(func(p string, n *overlay.Node) error {
		if p != "" {
			ents = append(ents, entry{n.Parent(), n.Ino(), path.Base(p)})
		}
		return nil
	})
	var mu sync.Mutex // guards r
	r := rand.New(rand.NewPCG(7, 7))
	return func() {
		mu.Lock()
		e := ents[r.IntN(len(ents))]
		var f *os.File
		if len(backing) > 0 {
			f = backing[r.IntN(len(backing))]
		}
		mu.Unlock()
		// ENOENT when the kernel does not know the node: nothing to forget.
		srv.srv.EntryNotify(e.parent, e.name)
		srv.srv.InodeNotify(e.ino, 0, -1)
		if f != nil {
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
	}
}
