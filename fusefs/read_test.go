package fusefs

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dropCache evicts a file's pages so the next read goes to the server.
func dropCache(t testing.TB, f *os.File) {
	t.Helper()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise: %v", err)
	}
}

// TestLargeFileRandomOffsets reads a 24 MiB file at random offsets and
// lengths, with the page cache dropped between rounds, and compares with
// the source bytes; then reads it whole.
func TestLargeFileRandomOffsets(t *testing.T) {
	src := randomBytes(7, 24<<20+123)
	_, mnt := mountImage(t, new(memImage).addLayer(file("a", "before"), fileBytes("big", src), file("z", "after")))
	f, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 1<<20)
	for round := 0; round < 300; round++ {
		if round%50 == 0 {
			dropCache(t, f)
		}
		off := r.Int64N(int64(len(src)) + 10)
		n := r.IntN(len(buf))
		got, err := f.ReadAt(buf[:n], off)
		if err != nil && err != io.EOF {
			t.Fatalf("pread(%d, %d): %v", off, n, err)
		}
		want := src[min(off, int64(len(src))):min(off+int64(n), int64(len(src)))]
		if !bytes.Equal(buf[:got], want) {
			t.Fatalf("pread(%d, %d): %d bytes differ from the source (want %d)", off, n, got, len(want))
		}
	}
	dropCache(t, f)
	all, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil || !bytes.Equal(all, src) {
		t.Fatalf("whole read: %d bytes, equal %v, err %v", len(all), bytes.Equal(all, src), err)
	}
}

// TestSparseFile reads a sparse file: zeros in the holes, data in the
// extents, the logical size, and st_blocks of the data only.
func TestSparseFile(t *testing.T) {
	content := make([]byte, 5<<20)
	copy(content[1<<20:], "first extent")
	copy(content[4<<20:], randomBytes(3, 8192))
	_, mnt := mountImage(t, new(memImage).addLayer(
		fileBytes("sparse", content, sparse([2]int64{1 << 20, 4096}, [2]int64{4 << 20, 8192})),
	))
	got, err := os.ReadFile(filepath.Join(mnt, "sparse"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("reading a sparse file: equal %v, err %v", bytes.Equal(got, content), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mnt, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 5<<20 || st.Blocks != (4096+8192)/512 {
		t.Errorf("size %d blocks %d, want %d and %d", st.Size, st.Blocks, 5<<20, (4096+8192)/512)
	}
}

// TestConcurrentReaders runs 8 goroutines reading random files at random
// offsets (run it under -race).
func TestConcurrentReaders(t *testing.T) {
	const nFiles = 64
	var es []fentry
	srcs := make([][]byte, nFiles)
	for i := range srcs {
		srcs[i] = randomBytes(uint64(i), 1000+i*9000)
		es = append(es, fileBytes(fmt.Sprintf("d%d/f%02d", i%4, i), srcs[i]))
	}
	_, mnt := mountImage(t, new(memImage).addLayer(es...))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			errs <- readRandomly(mnt, srcs, uint64(g), 200)
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func readRandomly(mnt string, srcs [][]byte, seed uint64, rounds int) error {
	r := rand.New(rand.NewPCG(seed, 99))
	buf := make([]byte, 64<<10)
	for i := 0; i < rounds; i++ {
		k := r.IntN(len(srcs))
		f, err := os.Open(filepath.Join(mnt, fmt.Sprintf("d%d/f%02d", k%4, k)))
		if err != nil {
			return err
		}
		src := srcs[k]
		off := r.IntN(len(src))
		n, err := f.ReadAt(buf[:r.IntN(len(buf))], int64(off))
		f.Close()
		if err != nil && err != io.EOF {
			return fmt.Errorf("file %d at %d: %w", k, off, err)
		}
		if !bytes.Equal(buf[:n], src[off:off+n]) {
			return fmt.Errorf("file %d at %d: bytes differ", k, off)
		}
	}
	return nil
}

// TestMountDoesNotSplice pins the choice explained in file.go: go-fuse's
// splice path answers short when splice(2) returns short before the end
// of the file, and the kernel then shrinks the file, so Mount copies
// reads even from content that offers plain layer files.
func TestMountDoesNotSplice(t *testing.T) {
	m := new(memImage).addLayer(fileBytes("f", randomBytes(3, 300<<10)))
	srv, mnt := mountTree(t, m.merge(t), &splicingLayerFile{*fileBacked(t, m)}, Options{Prefetch: true})
	if srv.fs.fds != nil {
		t.Fatalf("Mount set up splicing from the layer files (fds %v)", srv.fs.fds)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, randomBytes(3, 300<<10)) {
		t.Errorf("read %d bytes, not the image's", len(got))
	}
}
