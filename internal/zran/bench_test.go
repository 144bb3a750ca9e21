package zran

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
)

// benchSize is the amount of tar each benchmark input holds.
const benchSize = 64 << 20

type benchInput struct {
	tar, gz []byte
}

var (
	benchMu     sync.Mutex // guards benchInputs
	benchInputs = map[string]benchInput{}
)

// benchData returns a named input and its compress/gzip level-6 stream:
// "lib" and "share" are tars of this machine's /usr/lib and /usr/share,
// "text" and "binary" synthetic.
func benchData(b *testing.B, name string) benchInput {
	benchMu.Lock()
	defer benchMu.Unlock()
	if in, ok := benchInputs[name]; ok {
		return in
	}
	var data []byte
	switch name {
	case "lib":
		data = realTar(b, corpusDir, benchSize)
	case "share":
		data = realTar(b, "/usr/share", benchSize)
	case "text":
		data = synthText(benchSize, 1)
	case "binary":
		data = synthBinary(benchSize, 1)
	}
	in := benchInput{data, gzipGo(b, data, gzip.DefaultCompression)}
	benchInputs[name] = in
	return in
}

var benchNames = []string{"lib", "share", "text", "binary"}

// BenchmarkInflate compares the decoders on gzip -6 streams. "zran" is
// the indexing pass (checkpoints every DefaultSpan, windows compressed),
// "zran-noindex" the bare inflater (one checkpoint), "stdlib"
// compress/gzip, "klauspost" klauspost/compress/gzip.
func BenchmarkInflate(b *testing.B) {
	decoders := []struct {
		name string
		open func(r io.Reader) io.Reader
	}{
		{"zran", func(r io.Reader) io.Reader { return NewReader(r, 0) }},
		{"zran-noindex", func(r io.Reader) io.Reader { return NewReader(r, 1<<62) }},
		{"stdlib", func(r io.Reader) io.Reader {
			zr, err := gzip.NewReader(r)
			if err != nil {
				b.Fatal(err)
			}
			return zr
		}},
		{"klauspost", func(r io.Reader) io.Reader {
			zr, err := kgzip.NewReader(r)
			if err != nil {
				b.Fatal(err)
			}
			return zr
		}},
	}
	for _, name := range benchNames {
		for _, dec := range decoders {
			b.Run(name+"/"+dec.name, func(b *testing.B) {
				in := benchData(b, name)
				b.SetBytes(int64(len(in.tar)))
				for b.Loop() {
					n, err := io.Copy(io.Discard, dec.open(bytes.NewReader(in.gz)))
					if err != nil || n != int64(len(in.tar)) {
						b.Fatalf("%d bytes, %v", n, err)
					}
				}
			})
		}
	}
}

var benchSpans = []int64{256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20}

// BenchmarkIndexSize reports the encoded index size per GB of output and
// as a share of the compressed blob, for each span.
func BenchmarkIndexSize(b *testing.B) {
	for _, name := range []string{"lib", "share"} {
		for _, span := range benchSpans {
			b.Run(fmt.Sprintf("%s/span=%dK", name, span>>10), func(b *testing.B) {
				in := benchData(b, name)
				var size int
				for b.Loop() {
					_, x := index(b, in.gz, span)
					enc, _ := x.MarshalBinary()
					size = len(enc)
				}
				b.ReportMetric(float64(size)/float64(len(in.tar))*(1<<30)/(1<<20), "MB/GB")
				b.ReportMetric(100*float64(size)/float64(len(in.gz)), "%blob")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkReadAt4K reads 4 KiB at random offsets through a ReaderAt over
// the blob in a file (warm page cache) and reports the median and 99th
// percentile latency for each span.
func BenchmarkReadAt4K(b *testing.B) {
	for _, name := range []string{"lib", "share"} {
		for _, span := range benchSpans {
			b.Run(fmt.Sprintf("%s/span=%dK", name, span>>10), func(b *testing.B) {
				in := benchData(b, name)
				_, x := index(b, in.gz, span)
				path := filepath.Join(b.TempDir(), "blob")
				if err := os.WriteFile(path, in.gz, 0o644); err != nil {
					b.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				ra := NewReaderAt(f, x)
				rng := rand.New(rand.NewPCG(5, 6))
				p := make([]byte, 4096)
				var lat []time.Duration
				for b.Loop() {
					off := rng.Int64N(x.Size() - int64(len(p)))
					start := time.Now()
					if _, err := ra.ReadAt(p, off); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}
