package zran

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ocifs/ocifs/internal/testenv"
)

// corpusDir is where the real layer content comes from: shared libraries
// and other binaries, the bulk of most base images.
const corpusDir = "/usr/lib/x86_64-linux-gnu"

// corpusSize is how much tar the real-layer tests compress: smaller under
// the race detector, which slows the in-process compressors (and all but
// the inflater's hot loop) about tenfold; plain `go test` runs the full
// size.
func corpusSize() int {
	if raceEnabled || testing.Short() {
		return 6 << 20
	}
	return 40 << 20
}

type producer struct {
	name string
	make func(t *testing.T, tarball []byte) []byte
}

func toolGzip(tool string, args ...string) func(t *testing.T, tarball []byte) []byte {
	return func(t *testing.T, tarball []byte) []byte {
		path := testenv.RequireTool(t, tool, "apt-get install -y "+tool)
		cmd := exec.Command(path, append(args, "-c")...)
		cmd.Stdin = bytes.NewReader(tarball)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v: %s", tool, args, err, stderr.Bytes())
		}
		return out.Bytes()
	}
}

func goGzip(level int) func(t *testing.T, tarball []byte) []byte {
	return func(t *testing.T, tarball []byte) []byte { return gzipGo(t, tarball, level) }
}

func klauspostGzip(level int) func(t *testing.T, tarball []byte) []byte {
	return func(t *testing.T, tarball []byte) []byte {
		var buf bytes.Buffer
		zw, err := kgzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(tarball)
		zw.Close()
		return buf.Bytes()
	}
}

// multiMember is gzip -6 of four pieces, concatenated, plus 1 KiB of zero
// padding, as some tools pad layers to a tar block multiple.
func multiMember(t *testing.T, tarball []byte) []byte {
	var gz []byte
	q := len(tarball) / 4
	for i := range 4 {
		end := (i + 1) * q
		if i == 3 {
			end = len(tarball)
		}
		gz = append(gz, toolGzip("gzip", "-6")(t, tarball[i*q:end])...)
	}
	return append(gz, make([]byte, 1024)...)
}

func producers() []producer {
	ps := []producer{
		{"gzip-1", toolGzip("gzip", "-1")},
		{"gzip-6", toolGzip("gzip", "-6")},
		{"gzip-9", toolGzip("gzip", "-9")},
		{"pigz-1", toolGzip("pigz", "-1")},
		{"pigz-6", toolGzip("pigz", "-6")},
		{"pigz-9", toolGzip("pigz", "-9")},
		{"pigz-6-independent", toolGzip("pigz", "-6", "-i")},
		{"multi-member-padded", multiMember},
	}
	for _, l := range []int{gzip.HuffmanOnly, 0, 1, 6, 9} {
		ps = append(ps, producer{fmt.Sprintf("go-%d", l), goGzip(l)})
	}
	for _, l := range []int{kgzip.StatelessCompression, kgzip.HuffmanOnly, 1, 5, 9} {
		ps = append(ps, producer{fmt.Sprintf("klauspost-%d", l), klauspostGzip(l)})
	}
	return ps
}

// TestRealLayers decodes gzip streams of a real tar made by gzip, pigz,
// compress/gzip and klauspost/compress at several levels: the full decode
// equals the tar, the index survives encoding, every span decodes alone,
// and 1,000 random reads equal the tar's bytes.
func TestRealLayers(t *testing.T) {
	tarball := realTar(t, corpusDir, corpusSize())
	for _, p := range producers() {
		t.Run(p.name, func(t *testing.T) {
			gz := p.make(t, tarball)
			got, x := index(t, gz, 256<<10)
			if !bytes.Equal(got, tarball) {
				t.Fatalf("full decode differs at byte %d", firstDiff(got, tarball))
			}
			if x.Size() != int64(len(tarball)) {
				t.Fatalf("Size %d, want %d", x.Size(), len(tarball))
			}
			b, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var y Index
			if err := y.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			checkSpans(t, gz, tarball, &y)
			checkReadAt(t, gz, tarball, &y, rand.New(rand.NewPCG(11, 12)), 1000, 64<<10)
			t.Logf("%d bytes -> %d (%.2fx), %d members, %d spans, index %d bytes",
				len(tarball), len(gz), float64(len(tarball))/float64(len(gz)), y.Members(), y.NumSpans(), len(b))
		})
	}
}

// TestDefaultSpan checks the default: spans at least DefaultSpan long
// except the last, random reads right.
func TestDefaultSpan(t *testing.T) {
	tarball := realTar(t, corpusDir, corpusSize())
	gz := gzipGo(t, tarball, 1)
	_, x := index(t, gz, 0)
	if x.Span() != DefaultSpan {
		t.Fatalf("span %d, want %d", x.Span(), DefaultSpan)
	}
	for i := range x.NumSpans() - 1 {
		if s, e := x.SpanBounds(i); e-s < DefaultSpan {
			t.Fatalf("span %d is %d bytes", i, e-s)
		}
	}
	checkReadAt(t, gz, tarball, x, rand.New(rand.NewPCG(1, 2)), 100, 4096)
}
