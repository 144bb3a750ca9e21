package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sort"
	"testing"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/overlay"
)

// mergedTree opens ref in this test's cache (pulled before by the ocifs
// binary) and merges it in-process.
func mergedTree(t *testing.T, ref string) (*overlay.Tree, *cache.Image) {
	t.Helper()
	store, err := cache.Open(cacheDir(t), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Get(context.Background(), ref, cache.PullOptions{})
	if err != nil {
		t.Fatalf("opening %s from the cache: %v", ref, err)
	}
	t.Cleanup(func() { img.Close() })
	layers, err := img.Indexes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := overlay.Merge(layers)
	if err != nil {
		t.Fatalf("merging %s: %v", ref, err)
	}
	return tree, img
}

// treeRecords renders a merged tree as the records fswalk makes of a real
// directory, so a tree can be diffed against an unpacked rootfs.
func treeRecords(t *testing.T, tree *overlay.Tree, r overlay.LayerReader) []fswalk.Record {
	t.Helper()
	var recs []fswalk.Record
	paths := map[uint64][]string{}
	err := tree.Walk(func(p string, n *overlay.Node) error {
		rec := fswalk.Record{Path: p, Perm: n.Mode(), UID: n.UID(), GID: n.GID(), Size: n.Size(),
			MTime: n.MTime(), Nlink: uint64(n.Nlink()), Target: n.Target()}
		if p == "" {
			rec.Path = "."
		}
		rec.Type = recordType(n.Type())
		if n.Type() == overlay.TypeRegular {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(nodeReaderAt{n, r}, 0, n.Size())); err != nil {
				return err
			}
			rec.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		rec.Major, rec.Minor = n.Dev()
		if xs := n.Xattrs(); len(xs) > 0 {
			rec.Xattrs = map[string]string{}
			for _, x := range xs {
				rec.Xattrs[x.Name] = x.Value
			}
		}
		if n.Type() != overlay.TypeDir {
			paths[n.Ino()] = append(paths[n.Ino()], rec.Path)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		t.Fatalf("walking the merged tree: %v", err)
	}
	for i := range recs {
		n := tree.Get(recs[i].Path)
		if ps := paths[n.Ino()]; len(ps) > 1 && n.Type() != overlay.TypeDir {
			sort.Strings(ps)
			recs[i].Links = ps
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
	return recs
}

type nodeReaderAt struct {
	n *overlay.Node
	r overlay.LayerReader
}

func (nr nodeReaderAt) ReadAt(p []byte, off int64) (int, error) { return nr.n.ReadAt(nr.r, p, off) }

func recordType(t overlay.Type) fswalk.Type {
	switch t {
	case overlay.TypeDir:
		return fswalk.Dir
	case overlay.TypeSymlink:
		return fswalk.Symlink
	case overlay.TypeChar:
		return fswalk.Char
	case overlay.TypeBlock:
		return fswalk.Block
	case overlay.TypeFifo:
		return fswalk.Fifo
	}
	return fswalk.File
}
