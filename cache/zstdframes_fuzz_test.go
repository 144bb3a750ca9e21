package cache

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzZstdFrames checks the layer pass's frame walker against the zstd
// decoder reading the whole stream: the same bytes when both succeed, and
// the walker never accepts what the decoder rejects. (The walker may
// reject more: it insists on whole frames.) Every recorded frame start
// must decode on its own to the bytes recorded for it.
func FuzzZstdFrames(f *testing.F) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	data := bytes.Repeat([]byte("frames and blocks, raw and rle: aaaaaaaaaaaaaaaaaaaaaaaa\n"), 2000)
	one := enc.EncodeAll(data, nil)
	var multi []byte
	for i := 0; i < len(data); i += 7000 {
		multi = enc.EncodeAll(data[i:min(i+7000, len(data))], multi)
	}
	skip := binary.LittleEndian.AppendUint32(nil, zstdSkippableMagic+1)
	skip = append(binary.LittleEndian.AppendUint32(skip, 3), "toc"...)
	nocrc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithSingleSegment(true))
	f.Add(one)
	f.Add(multi)
	f.Add(append(append(bytes.Clone(skip), multi...), skip...))
	f.Add(nocrc.EncodeAll([]byte("x"), nocrc.EncodeAll(nil, nil)))
	f.Add(multi[:len(multi)-5])
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		if len(blob) > 1<<20 {
			return
		}
		z := newZstdOn(t, blob)
		got, err := io.ReadAll(io.LimitReader(z, 64<<20))
		if err != nil {
			return
		}
		ref, err := zstd.NewReader(bytes.NewReader(blob), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		want, err := io.ReadAll(ref)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("walker decoded %d bytes; the decoder %d bytes, %v", len(got), len(want), err)
		}
		ends := append(z.frames[1:], zstdFrameStart{in: z.sp.off, out: z.out})
		for i, fs := range z.frames {
			part, err := dec.DecodeAll(blob[fs.in:ends[i].in], nil)
			if err != nil || !bytes.Equal(part, got[fs.out:ends[i].out]) {
				t.Fatalf("frame %d at byte %d does not decode on its own: %v", i, fs.in, err)
			}
		}
	})
}

// FuzzZstdIndex: a frame table that decodes keeps the invariants the
// read path relies on, whatever its bytes.
func FuzzZstdIndex(f *testing.F) {
	x := groupFrames([]zstdFrameStart{{0, 0}, {100, 1 << 20}, {150, 3 << 20}}, 4<<20, 300)
	f.Add(x.marshal(), int64(4<<20))
	f.Add([]byte{1, 0}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		if size < 0 {
			return
		}
		x, err := unmarshalZstdIndex(b, size)
		if err != nil {
			return
		}
		for i := range x.numSpans() {
			s, e := x.spanBounds(i)
			from, to := x.compressedRange(i)
			if s >= e || from >= to || x.spanOf(s) != i || x.spanOf(e-1) != i {
				t.Fatalf("span %d: [%d,%d) from [%d,%d)", i, s, e, from, to)
			}
		}
	})
}
