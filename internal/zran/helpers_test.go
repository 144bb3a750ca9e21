package zran

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"
)

// inflateRaw decodes a raw deflate stream with our inflater, producing
// output chunk bytes at a time (small chunks exercise pending copies and
// slides), starting with history dict.
func inflateRaw(src io.Reader, dict []byte, chunk int) ([]byte, error) {
	var d decoder
	d.input.reset(src, 0)
	d.out = make([]byte, WindowSize+chunk+outSlack)
	d.w = copy(d.out, dict[max(0, len(dict)-WindowSize):])
	d.limit = len(d.out) - outSlack
	d.startStream()
	var got []byte
	for {
		if d.w >= d.limit {
			d.slide()
		}
		from := d.w
		ev, err := d.run()
		got = append(got, d.out[from:d.w]...)
		if err != nil {
			return got, err
		}
		if ev == evEnd {
			return got, nil
		}
	}
}

// flateRaw decodes a raw deflate stream with compress/flate.
func flateRaw(raw, dict []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReaderDict(bytes.NewReader(raw), dict))
}

func deflate(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	return buf.Bytes()
}

func gzipGo(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// index reads gz to the end through a Reader and returns what it decoded
// and its index.
func index(t testing.TB, gz []byte, span int64) ([]byte, *Index) {
	t.Helper()
	z := NewReader(bytes.NewReader(gz), span)
	got, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	x, err := z.Index()
	if err != nil {
		t.Fatalf("index: %v", err)
	}
	return got, x
}

// checkSpans decodes every span of x and compares it with want.
func checkSpans(t testing.TB, gz, want []byte, x *Index) {
	t.Helper()
	ra := NewReaderAt(bytes.NewReader(gz), x)
	for i := range x.NumSpans() {
		start, end := x.SpanBounds(i)
		got, err := ra.DecodeSpan(i)
		if err != nil {
			t.Fatalf("span %d [%d,%d): %v", i, start, end, err)
		}
		if !bytes.Equal(got, want[start:end]) {
			t.Fatalf("span %d [%d,%d): wrong bytes", i, start, end)
		}
		// DecodeSpanTo into a reused buffer full of garbage.
		buf := bytes.Repeat([]byte{0xAA}, ra.SpanBufferSize(i)+7)
		got, err = ra.DecodeSpanTo(i, buf)
		if err != nil || !bytes.Equal(got, want[start:end]) {
			t.Fatalf("span %d [%d,%d) into a reused buffer: %v, equal %v", i, start, end, err, bytes.Equal(got, want[start:end]))
		}
		if b, g := uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(unsafe.Pointer(unsafe.SliceData(got))); g < b || g >= b+uintptr(len(buf)) {
			t.Fatalf("span %d: DecodeSpanTo did not decode into the buffer", i)
		}
	}
}

// checkReadAt reads n random ranges of up to maxLen bytes through a
// ReaderAt and compares them with want.
func checkReadAt(t testing.TB, gz, want []byte, x *Index, rng *rand.Rand, n, maxLen int) {
	t.Helper()
	ra := NewReaderAt(bytes.NewReader(gz), x)
	p := make([]byte, maxLen)
	for range n {
		off := rng.Int64N(int64(len(want)) + 1)
		l := rng.IntN(maxLen + 1)
		got, err := ra.ReadAt(p[:l], off)
		wantN := min(int64(l), int64(len(want))-off)
		if got != int(wantN) || (err != nil) != (wantN < int64(l)) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("ReadAt(%d bytes, %d) of %d: %d, %v", l, off, len(want), got, err)
		}
		if !bytes.Equal(p[:got], want[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes, %d): wrong bytes", l, off)
		}
	}
}

// realTar is a tar of real files under dir (sorted walk, files over
// limit/8 left out so that it holds many), ending once it holds about
// limit bytes; built once per process and cached.
func realTar(t testing.TB, dir string, limit int) []byte {
	t.Helper()
	key := tarKey{dir, limit}
	tarMu.Lock()
	defer tarMu.Unlock()
	if b, ok := tarCache[key]; ok {
		return b
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no %s to build test data from: %v", dir, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if buf.Len() >= limit {
			return fs.SkipAll
		}
		if err != nil {
			return nil // unreadable: leave it out
		}
		return addTarEntry(tw, p, d, int64(limit/8))
	})
	tw.Close()
	tarCache[key] = buf.Bytes()
	return buf.Bytes()
}

type tarKey struct {
	dir   string
	limit int
}

var (
	tarMu    sync.Mutex // guards tarCache
	tarCache = map[tarKey][]byte{}
)

func addTarEntry(tw *tar.Writer, p string, d fs.DirEntry, maxFile int64) error {
	info, err := d.Info()
	if err != nil || !(info.Mode().IsRegular() || info.IsDir() || info.Mode()&fs.ModeSymlink != 0) || info.Size() > maxFile {
		return nil
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		link, _ = os.Readlink(p)
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return nil
	}
	hdr.Name = p
	if !info.Mode().IsRegular() {
		return tw.WriteHeader(hdr)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil // unreadable: leave it out
	}
	hdr.Size = int64(len(b))
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// synthText is deterministic English-like text: words drawn from a small
// vocabulary with a skewed distribution, lines of varied length.
func synthText(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"the", "layer", "of", "image", "file", "system", "and", "a", "to", "in",
		"checkpoint", "window", "deflate", "block", "is", "for", "read", "random", "access",
		"compressed", "bytes", "offset", "gzip", "member", "index", "span", "tar", "entry"}
	var b bytes.Buffer
	for b.Len() < n {
		w := words[int(rng.ExpFloat64()*4)%len(words)]
		b.WriteString(w)
		if rng.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// synthBinary mixes random bytes, runs, small integers and copies of
// earlier data at every distance up to the window, like object code.
func synthBinary(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, 0, n+1024)
	for len(b) < n {
		switch rng.IntN(5) {
		case 0:
			for range rng.IntN(64) {
				b = append(b, byte(rng.Uint32()))
			}
		case 1:
			c := byte(rng.IntN(3) * 0x7f)
			for range rng.IntN(300) {
				b = append(b, c)
			}
		case 2:
			for range rng.IntN(32) {
				b = append(b, byte(rng.IntN(16)), 0, 0, 0)
			}
		default:
			if len(b) > 0 {
				d := 1 + rng.IntN(min(len(b), WindowSize))
				l := rng.IntN(300)
				for range l {
					b = append(b, b[len(b)-d])
				}
			}
		}
	}
	return b[:n]
}
