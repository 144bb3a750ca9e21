package cache

import (
	"bytes"
	"context"
	"fmt"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"io"
	"math/rand/v2"
	"testing"
)

// bigLayerTar is a tar of n files of size bytes each, half random (poorly
// compressible) and half text.
func bigLayerTar(tb testing.TB, n, size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	items := make([]ti.Entry, 0, n)
	body := make([]byte, size)
	for i := range n {
		if i%2 == 0 {
			for j := range body {
				body[j] = byte(r.Uint32())
			}
		} else {
			copy(body, bytes.Repeat([]byte(fmt.Sprintf("line %d of a text file\n", i)), size/20+1))
		}
		items = append(items, ti.File(fmt.Sprintf("d%d/f%d", i%50, i), string(body)))
	}
	return ti.Layer(items...)
}

// BenchmarkLayerPass measures the one-pass indexer on a local blob: hash,
// decompress (recording the seek index), diffID, scan and, in unpacked
// mode, writing the unpacked copy.
func BenchmarkLayerPass(b *testing.B) {
	for _, mk := range []struct {
		name string
		f    func(testing.TB, []byte) *testLayer
		mode Mode
	}{
		{"gzip", gzipLayer, ModeUnpacked}, {"gzip-compact", gzipLayer, ModeCompact},
		{"zstd", zstdLayer, ModeUnpacked}, {"plain", func(_ testing.TB, t []byte) *testLayer { return plainLayer(t) }, ModeUnpacked},
	} {
		b.Run(mk.name, func(b *testing.B) {
			l := mk.f(b, bigLayerTar(b, 2000, 32<<10))
			s := openStoreMode(b, "", mk.mode)
			b.SetBytes(int64(len(l.tar)))
			b.ResetTimer()
			for b.Loop() {
				job := &layerJob{digest: l.digest(), diffID: l.diffID(), size: int64(len(l.blob)), writeBlob: true,
					open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l.blob)), nil }}
				if _, err := s.runLayerPass(context.Background(), job); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Prune(context.Background(), PruneOptions{})
				b.StartTimer()
			}
		})
	}
}

// BenchmarkReadLayerAt is the FUSE read path: 64 KiB preads (what
// mkfs.ext4 -d issues) from a stored layer.
func BenchmarkReadLayerAt(b *testing.B) {
	host, _ := startRegistry(b)
	l := gzipLayer(b, bigLayerTar(b, 256, 256<<10))
	ref := host + "/bench/read:v1"
	push(b, ref, imageOf(b, "linux/amd64", l))
	s := openStore(b, "")
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	must(b, err)
	defer img.Close()
	buf := make([]byte, 64<<10)
	size := int64(len(l.tar)) - int64(len(buf))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if _, err := img.ReadLayerAt(0, buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(buf))) % size
	}
}

// BenchmarkReadLayerAtCompact is a random 4 KiB read of a gzip layer
// served from its blob, with the span cache off (every read decodes the
// span it falls in: the cost of a first read) and on (a 64 MiB layer in
// a 32 MiB cache).
func BenchmarkReadLayerAtCompact(b *testing.B) {
	host, _ := startRegistry(b)
	l := gzipLayer(b, bigLayerTar(b, 256, 256<<10))
	ref := host + "/bench/compact:v1"
	push(b, ref, imageOf(b, "linux/amd64", l))
	for _, bc := range []struct {
		name  string
		cache int64
	}{{"decode-every-read", -1}, {"span-cache", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Mode: ModeCompact, SpanCache: bc.cache})
			must(b, err)
			img, err := s.Pull(context.Background(), ref, PullOptions{})
			must(b, err)
			defer img.Close()
			buf := make([]byte, 4096)
			r := rand.New(rand.NewPCG(1, 1))
			for b.Loop() {
				if _, err := img.ReadLayerAt(0, buf, r.Int64N(int64(len(l.tar))-4096)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
