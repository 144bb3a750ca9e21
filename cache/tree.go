package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/overlay"
)

// treesDir holds merged trees, saved so that a warm mount neither loads
// the layer indexes nor merges them again.
const treesDir = "ocifs/trees"

// Tree returns the merged tree of the image's first n layers (all when
// n <= 0). A tree saved by an earlier call for the same layers (by
// diffID, in order) and the same overlay.TreeVersion is loaded; a missing,
// damaged or outdated one is merged afresh from the indexes and saved
// atomically. Merge errors are returned as they are (*overlay.EntryError).
func (img *Image) Tree(ctx context.Context, n int) (*overlay.Tree, error) {
	if n <= 0 || n > len(img.Layers) {
		n = len(img.Layers)
	}
	if img.Lazy() {
		return img.mergeLazy(ctx, n) // offsets of a TOC-made index must not be saved as the diffIDs' tree
	}
	path := img.store.treePath(img.Layers[:n])
	if data, err := os.ReadFile(path); err == nil {
		t, err := overlay.UnmarshalTree(data, n)
		if err == nil {
			img.markLive(t)
			return t, nil
		}
		img.store.log.Warn("saved merged tree is unusable; merging again", "path", path, "err", err)
	} else if !errors.Is(err, fs.ErrNotExist) {
		img.store.log.Warn("reading saved merged tree", "path", path, "err", err)
	}
	layers, err := img.Indexes(ctx)
	if err != nil {
		return nil, err
	}
	t, err := overlay.Merge(layers[:n])
	if err != nil {
		return nil, err
	}
	if err := img.store.saveTree(path, t.MarshalBinary(n)); err != nil {
		img.store.log.Warn("saving merged tree", "path", path, "err", err)
	}
	img.markLive(t)
	return t, nil
}

// markLive tells the layers read from their blobs which spans hold data
// of t's files, so that read-ahead skips the rest (content that later
// layers delete or replace is never read through t). The first tree's
// bytes are also counted per span, so that spans leave the span cache
// once read (seekContent.consume); a second tree (of another layer
// count, say) turns the counting off, since reads through one tree would
// use up the other's spans.
func (img *Image) markLive(t *overlay.Tree) {
	count := img.marked.CompareAndSwap(nil, t)
	for _, c := range img.content {
		if sc, ok := c.(*seekContent); ok && !count {
			sc.counting.Store(false)
		}
	}
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno)+uint64(t.Len()); ino++ {
		img.fileRanges(t.Node(ino), func(sc *seekContent, off, n int64) { sc.markLive(off, n, count) })
	}
	if count {
		for _, c := range img.content {
			if sc, ok := c.(*seekContent); ok {
				sc.counting.Store(true)
			}
		}
	}
}

// fileRanges calls fn with each range of a layer's tar stream that holds
// n's data, if n is a non-empty regular file of a layer read from its
// compressed blob.
func (img *Image) fileRanges(n *overlay.Node, fn func(sc *seekContent, off, size int64)) {
	if n.Type() != overlay.TypeRegular || n.Size() == 0 || n.Layer() >= len(img.content) {
		return
	}
	sc, ok := img.content[n.Layer()].(*seekContent)
	if !ok {
		return
	}
	if sp := n.Sparse(); sp != nil {
		for _, x := range sp {
			fn(sc, x.TarOff, x.Len)
		}
		return
	}
	fn(sc, n.Offset(), n.Size())
}

// treePath names the saved tree of a layer stack.
func (s *Store) treePath(layers []Layer) string {
	diffIDs := make([]v1.Hash, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.DiffID
	}
	return s.treePathOf(diffIDs)
}

func (s *Store) treePathOf(diffIDs []v1.Hash) string {
	return filepath.Join(s.dir, treesDir, "sha256", treeName(diffIDs))
}

// treeName is the file name of the saved tree of a layer stack: a hash of
// the diffIDs in order, of overlay.TreeVersion and of indexVersion (a
// tree merged from indexes of another version may hold other entries).
func treeName(diffIDs []v1.Hash) string {
	h := sha256.New()
	fmt.Fprintf(h, "ocifs merged tree v%d index v%d\n", overlay.TreeVersion, indexVersion)
	for _, d := range diffIDs {
		h.Write([]byte(d.String() + "\n"))
	}
	h.Write([]byte(strconv.Itoa(len(diffIDs))))
	return hex.EncodeToString(h.Sum(nil))
}

// verifyTree checks that a saved tree decodes; a bad one is merged again
// the next time it is needed.
func verifyTree(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	_, err = overlay.UnmarshalTree(data, -1)
	return int64(len(data)), err
}

func (s *Store) saveTree(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return s.writeFileAtomic(path, data)
}
