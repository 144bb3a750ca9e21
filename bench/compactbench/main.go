// Command compactbench measures random reads for bench/compact.sh: 4 KiB
// reads at random offsets of random regular files, each file opened for
// its read, either through a mounted directory (the whole path: kernel,
// FUSE, the mount server's cache) or in process through the cache
// (cache.Image.ReadLayerAt under the merged tree, no FUSE). It prints one
// line: reads, files, median and p99 in milliseconds.
//
//	compactbench mount -n N DIR
//	compactbench cache -n N [-mode compact|unpacked] -cache DIR REF
//
// It is a benchmark driver, not part of ocifs, and not run in CI.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/overlay"
)

const readSize = 4096

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compactbench mount|cache [flags]")
		os.Exit(2)
	}
	fl := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := fl.Int("n", 2000, "reads")
	seed := fl.Uint64("seed", 1, "random seed")
	mode := fl.String("mode", "compact", "cache mode (cache)")
	dir := fl.String("cache", "", "cache directory (cache)")
	fl.Parse(os.Args[2:])
	r := rand.New(rand.NewPCG(*seed, 99))
	var lat []time.Duration
	var files int
	var err error
	switch os.Args[1] {
	case "mount":
		lat, files, err = viaMount(fl.Arg(0), *n, r)
	case "cache":
		lat, files, err = viaCache(*dir, cache.Mode(*mode), fl.Arg(0), *n, r)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compactbench:", err)
		os.Exit(1)
	}
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("reads=%d files=%d median_ms=%.3f p99_ms=%.3f\n", len(lat), files, ms(0.5), ms(0.99))
}

// offsetIn picks a 4 KiB-aligned offset inside a file of size bytes.
func offsetIn(r *rand.Rand, size int64) int64 {
	return r.Int64N((size+readSize-1)/readSize) * readSize
}

func viaMount(dir string, n int, r *rand.Rand) ([]time.Duration, int, error) {
	type file struct {
		path string
		size int64
	}
	var fs_ []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Size() > 0 {
			fs_ = append(fs_, file{p, fi.Size()})
		}
		return nil
	})
	if err != nil || len(fs_) == 0 {
		return nil, 0, fmt.Errorf("walking %s: %v (%d files)", dir, err, len(fs_))
	}
	r.Shuffle(len(fs_), func(i, j int) { fs_[i], fs_[j] = fs_[j], fs_[i] })
	buf := make([]byte, readSize)
	var lat []time.Duration
	for i := range min(n, len(fs_)) { // each file once: nothing in the page cache
		f := fs_[i]
		off := offsetIn(r, f.size)
		start := time.Now()
		h, err := os.Open(f.path)
		if err != nil {
			return nil, 0, err
		}
		_, err = h.ReadAt(buf, off)
		h.Close()
		if err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("reading %s at %d: %w", f.path, off, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, len(fs_), nil
}

func viaCache(dir string, mode cache.Mode, ref string, n int, r *rand.Rand) ([]time.Duration, int, error) {
	s, err := cache.Open(dir, cache.Options{Mode: mode})
	if err != nil {
		return nil, 0, err
	}
	img, err := s.Get(context.Background(), ref, cache.PullOptions{})
	if err != nil {
		return nil, 0, err
	}
	defer img.Close()
	tree, err := img.Tree(context.Background(), 0)
	if err != nil {
		return nil, 0, err
	}
	var nodes []*overlay.Node
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno)+uint64(tree.Len()); ino++ {
		if nd := tree.Node(ino); nd.Type() == overlay.TypeRegular && nd.Size() > 0 {
			nodes = append(nodes, nd)
		}
	}
	buf := make([]byte, readSize)
	var lat []time.Duration
	for range n {
		nd := nodes[r.IntN(len(nodes))]
		off := offsetIn(r, nd.Size())
		start := time.Now()
		if _, err := nd.ReadAt(img, buf, off); err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("reading inode %d at %d: %w", nd.Ino(), off, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, len(nodes), nil
}
