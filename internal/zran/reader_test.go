package zran

import (
	"bytes"
	"compress/gzip"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
)

// TestReaderFraming covers what may follow and surround gzip members.
func TestReaderFraming(t *testing.T) {
	data := synthText(100<<10, 3)
	gz := gzipGo(t, data, 6)
	empty := gzipGo(t, nil, 6)
	withName := func() []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Name, zw.Comment, zw.Extra = "layer.tar", "a comment", []byte("extra field")
		zw.Write(data)
		zw.Close()
		return buf.Bytes()
	}()
	hcrc := func(flip bool) []byte { // FHCRC set by hand: compress/gzip never writes it
		b := append([]byte{0x1f, 0x8b, 8, 2, 0, 0, 0, 0, 0, 255}, 0, 0)
		sum := crc32.ChecksumIEEE(b[:10])
		b[10], b[11] = byte(sum), byte(sum>>8)
		if flip {
			b[11] ^= 1
		}
		return append(b, gz[10:]...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		gz      []byte
		want    []byte
		wantErr error
	}{
		{"plain", gz, data, nil},
		{"name-comment-extra", withName, data, nil},
		{"header-crc", hcrc(false), data, nil},
		{"header-crc-wrong", hcrc(true), nil, ErrCorrupt},
		{"zero-padding", cat(gz, make([]byte, 4096)), data, nil},
		{"members", cat(gz, empty, gz), cat(data, data), nil},
		{"only-empty-member", empty, nil, nil},
		{"garbage-after", cat(gz, []byte("junk")), nil, ErrTrailingGarbage},
		{"garbage-after-zeros", cat(gz, []byte{0, 0, 1}), nil, ErrTrailingGarbage},
		{"partial-member-after", cat(gz, gz[:5]), nil, io.ErrUnexpectedEOF},
		{"truncated", gz[:len(gz)-3], nil, io.ErrUnexpectedEOF},
		{"bad-crc", cat(gz[:len(gz)-8], []byte{1, 2, 3, 4}, gz[len(gz)-4:]), nil, ErrCorrupt},
		{"bad-size", cat(gz[:len(gz)-4], []byte{1, 2, 3, 4}), nil, ErrCorrupt},
		{"not-gzip", []byte("hello world, not gzip"), nil, ErrCorrupt},
		{"bad-method", cat(gz[:2], []byte{7}, gz[3:]), nil, ErrCorrupt},
		{"empty", nil, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := NewReader(iotest.HalfReader(bytes.NewReader(tt.gz)), 1)
			got, err := io.ReadAll(z)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if _, ierr := z.Index(); (ierr == nil) != (err == nil) {
				t.Fatalf("Index error %v after read error %v", ierr, err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			x, _ := z.Index()
			checkSpans(t, tt.gz, tt.want, x)
		})
	}
}

// TestReaderSourceError passes a failing source's error on.
func TestReaderSourceError(t *testing.T) {
	gz := gzipGo(t, synthBinary(200<<10, 1), 6)
	boom := errors.New("boom")
	z := NewReader(io.MultiReader(bytes.NewReader(gz[:len(gz)/2]), iotest.ErrReader(boom)), 0)
	if _, err := io.Copy(io.Discard, z); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if _, err := z.Index(); !errors.Is(err, boom) {
		t.Fatalf("Index: %v", err)
	}
}

// TestIndexNeedsEOF: no index before the stream has been read to the end.
func TestIndexNeedsEOF(t *testing.T) {
	gz := gzipGo(t, synthText(1<<20, 1), 6)
	z := NewReader(bytes.NewReader(gz), 0)
	io.CopyN(io.Discard, z, 1000)
	if _, err := z.Index(); err == nil {
		t.Fatal("Index before EOF succeeded")
	}
	io.Copy(io.Discard, z)
	if _, err := z.Index(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderReadSizes reads with odd buffer sizes and through WriteTo.
func TestReaderReadSizes(t *testing.T) {
	data := synthBinary(700<<10, 4)
	gz := gzipGo(t, data, 9)
	got, err := io.ReadAll(iotest.OneByteReader(NewReader(bytes.NewReader(gz), 0)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("one byte reads: %v", err)
	}
	var buf bytes.Buffer
	n, err := NewReader(bytes.NewReader(gz), 0).WriteTo(&buf)
	if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	if err := iotest.TestReader(NewReader(bytes.NewReader(gz), 0), data); err != nil {
		t.Fatal(err)
	}
}

// TestReaderAtEdges covers offsets at and past the ends.
func TestReaderAtEdges(t *testing.T) {
	data := synthText(300<<10, 9)
	gz := gzipGo(t, data, 6)
	_, x := index(t, gz, 64<<10)
	ra := NewReaderAt(bytes.NewReader(gz), x)
	p := make([]byte, 10)
	if _, err := ra.ReadAt(p, -1); err == nil {
		t.Error("negative offset: no error")
	}
	if n, err := ra.ReadAt(p, x.Size()); n != 0 || err != io.EOF {
		t.Errorf("at the end: %d, %v", n, err)
	}
	if n, err := ra.ReadAt(p, x.Size()-4); n != 4 || err != io.EOF || !bytes.Equal(p[:4], data[len(data)-4:]) {
		t.Errorf("across the end: %d, %v", n, err)
	}
	if n, err := ra.ReadAt(p[:0], x.Size()+5); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}
	if _, err := ra.DecodeSpan(x.NumSpans()); err == nil {
		t.Error("DecodeSpan past the last span: no error")
	}
	// Across every checkpoint.
	for i := 1; i < x.NumSpans(); i++ {
		s, _ := x.SpanBounds(i)
		n, err := ra.ReadAt(p, s-5)
		if n != len(p) || err != nil || !bytes.Equal(p, data[s-5:s+5]) {
			t.Fatalf("across checkpoint %d: %d, %v", i, n, err)
		}
	}
}

// TestReaderAtCorruptBlob reads through an index over damaged blobs:
// errors, never panics or wrong lengths.
func TestReaderAtCorruptBlob(t *testing.T) {
	data := synthBinary(400<<10, 2)
	gz := gzipGo(t, data, 6)
	_, x := index(t, gz, 64<<10)
	rng := rand.New(rand.NewPCG(7, 7))
	p := make([]byte, 8192)
	errs := 0
	for range 300 {
		bad := bytes.Clone(gz)
		for range 1 + rng.IntN(4) {
			bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(4) == 0 {
			bad = bad[:rng.IntN(len(bad))]
		}
		ra := NewReaderAt(bytes.NewReader(bad), x)
		off := rng.Int64N(x.Size())
		n, err := ra.ReadAt(p, off)
		if err != nil && err != io.EOF {
			errs++
			continue
		}
		if want := min(int64(len(p)), x.Size()-off); int64(n) != want {
			t.Fatalf("read %d bytes, want %d, no error", n, want)
		}
		for i := range x.NumSpans() {
			ra.DecodeSpan(i)
		}
	}
	if errs == 0 {
		t.Fatal("no damaged blob gave an error")
	}
}

// TestReaderAtConcurrent reads from many goroutines at once (run with
// -race).
func TestReaderAtConcurrent(t *testing.T) {
	data := synthBinary(1<<20, 6)
	gz := gzipGo(t, data, 6)
	_, x := index(t, gz, 100<<10)
	ra := NewReaderAt(bytes.NewReader(gz), x)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			p := make([]byte, 5000)
			for range 20 {
				off := rng.Int64N(int64(len(data) - len(p)))
				if _, err := ra.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
					t.Errorf("ReadAt %d: %v", off, err)
					return
				}
				i := rng.IntN(x.NumSpans())
				s, e := x.SpanBounds(i)
				if b, err := ra.DecodeSpan(i); err != nil || !bytes.Equal(b, data[s:e]) {
					t.Errorf("DecodeSpan %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLongSpan: spans longer than spanAlloc decode through DecodeSpan's
// growing buffer.
func TestLongSpan(t *testing.T) {
	data := synthText(3*spanAlloc, 8)
	gz := gzipGo(t, data, 1)
	_, x := index(t, gz, 2*spanAlloc)
	if s, e := x.SpanBounds(0); e-s <= spanAlloc {
		t.Fatalf("first span is %d bytes, want more than %d", e-s, spanAlloc)
	}
	checkSpans(t, gz, data, x)
}
