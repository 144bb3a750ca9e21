package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ocifs/ocifs/internal/testimage"
)

// layerPrefixes sends a path to the first layer whose prefix it has;
// anything else goes to layer 0 (the base system without /usr).
var layerPrefixes = []struct {
	prefix string
	layer  int
}{
	{"usr/lib/", 1},
	{"usr/share/", 2},
	{"usr/", 3},
}

const cleanupLayer = 4

func assignLayer(rel string) int {
	for _, p := range layerPrefixes {
		if strings.HasPrefix(rel, p.prefix) {
			return p.layer
		}
	}
	return 0
}

// removed is what the cleanup layer deletes: the files under these
// directories, as `rm -rf /var/lib/apt/lists/*` in a Dockerfile would.
var removed = []string{"var/lib/apt/lists", "var/cache/apt/archives"}

// runPush builds the layered image of rootfs and pushes it to ref.
func runPush(rootfs, ref string) error {
	layers, stats, err := layersOf(rootfs)
	if err != nil {
		return err
	}
	img, err := testimage.Build(layers, testimage.WithPlatform("linux/amd64"))
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", ref, err)
	}
	if err := remote.Write(r, img); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, _ := img.Digest()
	fmt.Printf("pushed %s@%s: %s\n", ref, d, stats)
	return nil
}

// layersOf returns the tar streams of the layers, bottom first.
func layersOf(rootfs string) ([][]byte, string, error) {
	nodes, err := scanTree(rootfs, assignLayer)
	if err != nil {
		return nil, "", err
	}
	dirs := map[string]fs.FileInfo{}
	for _, n := range nodes {
		if n.fi.IsDir() {
			dirs[n.rel] = n.fi
		}
	}
	ws := make([]*layerWriter, cleanupLayer)
	for i := range ws {
		ws[i] = newLayerWriter(rootfs, dirs)
	}
	counts := make([]int, cleanupLayer+1)
	for _, n := range nodes {
		if err := ws[n.layer].add(n); err != nil {
			return nil, "", err
		}
		counts[n.layer]++
	}
	var out [][]byte
	for _, w := range ws {
		b, err := w.close()
		if err != nil {
			return nil, "", err
		}
		out = append(out, b)
	}
	cleanup, n, err := cleanupTar(nodes, newLayerWriter(rootfs, dirs))
	if err != nil {
		return nil, "", err
	}
	counts[cleanupLayer] = n
	out = append(out, cleanup)
	return out, fmt.Sprintf("%d paths, entries per layer %v", len(nodes), counts), nil
}

// cleanupTar writes the last layer: a whiteout for every path directly
// under the removed directories, and one new file.
func cleanupTar(nodes []node, w *layerWriter) ([]byte, int, error) {
	count := 0
	for _, n := range nodes {
		dir := path.Dir(n.rel)
		if !contains(removed, dir) {
			continue
		}
		if err := w.parents(n.rel); err != nil {
			return nil, 0, err
		}
		wh := &tar.Header{Name: path.Join(dir, ".wh."+path.Base(n.rel)), Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX, ModTime: n.fi.ModTime().Truncate(1e9)}
		if err := w.tw.WriteHeader(wh); err != nil {
			return nil, 0, err
		}
		count++
	}
	body := []byte("built by ocifs bench/run.sh\n")
	h := &tar.Header{Name: "etc/ocifs-bench", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}
	if err := w.parents(h.Name); err != nil {
		return nil, 0, err
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return nil, 0, err
	}
	if _, err := bytes.NewReader(body).WriteTo(w.tw); err != nil {
		return nil, 0, err
	}
	b, err := w.close()
	return b, count + 1, err
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
