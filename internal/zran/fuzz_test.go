package zran

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"testing"
)

// fuzzPayload turns fuzz bytes into test data of one of several shapes:
// as is, repeated far apart (distances up to the window), synthetic
// object code or synthetic text grown from a seed taken from the bytes.
func fuzzPayload(data []byte, shape uint8) []byte {
	h := fnv.New64a()
	h.Write(data)
	seed := h.Sum64()
	switch shape & 3 {
	case 1:
		rng := rand.New(rand.NewPCG(seed, 9))
		var out []byte
		for range 1 + rng.IntN(4) {
			out = append(out, data...)
			for range rng.IntN(WindowSize + 2000) {
				out = append(out, byte(rng.Uint32()))
			}
		}
		return append(out, data...)
	case 2:
		return synthBinary(min(len(data)*64, 192<<10), seed)
	case 3:
		return synthText(min(len(data)*64, 192<<10), seed)
	}
	return data
}

// fuzzLevel maps a byte onto compress/flate's levels, HuffmanOnly included.
func fuzzLevel(level int8) int {
	return int(uint8(level))%12 - 2
}

func fuzzChunk(shape uint8) int {
	return []int{1, 3, 300, outChunk}[shape>>4&3]
}

// FuzzInflate is the differential test against compress/flate: data of
// every shape compressed at every level by compress/flate or
// klauspost/compress must decode to the same bytes; as gzip (one or three
// members) indexed at every block, every span must decode on its own and
// decoding resumed at every checkpoint must give the rest of the data.
func FuzzInflate(f *testing.F) {
	f.Add([]byte("hello, hello, hello world"), int8(6), uint8(0))
	f.Add([]byte("abcabcabcabc"), int8(2), uint8(1))
	f.Add([]byte{0, 1, 2, 3}, int8(0), uint8(2|4|8))
	f.Add([]byte("the quick brown fox"), int8(11), uint8(3|16))
	f.Add([]byte{}, int8(1), uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, level int8, shape uint8) {
		payload := fuzzPayload(data, shape)
		lvl := fuzzLevel(level)
		var raw []byte
		if shape&4 != 0 {
			raw = kdeflate(t, payload, lvl)
		} else {
			raw = deflate(t, payload, lvl)
		}
		got, err := inflateRaw(bytes.NewReader(raw), nil, fuzzChunk(shape))
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("raw level %d: %v; equal %v", lvl, err, bytes.Equal(got, payload))
		}
		gz := gzipMembers(t, payload, lvl, shape&8 != 0)
		checkResume(t, gz, payload)
		// Spans longer than the window: thinned windows.
		_, x := index(t, gz, WindowSize+1+int64(shape)*1000)
		checkSpans(t, gz, payload, x)
	})
}

// gzipMembers compresses data as one gzip member, or as three (the middle
// one empty) when multi is set.
func gzipMembers(t testing.TB, data []byte, level int, multi bool) []byte {
	if !multi {
		return gzipGo(t, data, level)
	}
	half := len(data) / 2
	gz := gzipGo(t, data[:half], level)
	gz = append(gz, gzipGo(t, nil, level)...)
	return append(gz, gzipGo(t, data[half:], level)...)
}

// checkResume indexes gz at every block and checks spans and suffixes.
func checkResume(t *testing.T, gz, want []byte) {
	got, x := index(t, gz, 1)
	if !bytes.Equal(got, want) {
		t.Fatalf("gzip: wrong bytes")
	}
	checkSpans(t, gz, want, x)
	ra := NewReaderAt(bytes.NewReader(gz), x)
	for i := range min(x.NumSpans(), 12) {
		start, _ := x.SpanBounds(i)
		rest := make([]byte, len(want)-int(start))
		n, err := ra.ReadAt(rest, start)
		if n != len(rest) || err != nil || !bytes.Equal(rest, want[start:]) {
			t.Fatalf("resumed at checkpoint %d (offset %d): %d bytes, %v", i, start, n, err)
		}
	}
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var y Index
	if err := y.UnmarshalBinary(b); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	checkSpans(t, gz, want, &y)
}

// FuzzInflateCorrupt damages compressed data (or takes the fuzz bytes as
// deflate data outright) and compares with compress/flate: both accept
// with the same output or both fail; never a panic or a hang. The same
// data in a gzip frame must decode as compress/gzip does.
func FuzzInflateCorrupt(f *testing.F) {
	f.Add([]byte("hello, hello, hello world"), int8(6), uint8(0), uint32(3), uint8(0x10), uint32(0))
	f.Add([]byte("abcdefgh"), int8(9), uint8(2), uint32(100), uint8(1), uint32(0))
	f.Add([]byte("abcdefgh"), int8(1), uint8(3), uint32(0), uint8(0), uint32(200))
	f.Add([]byte{0xed, 0xc1, 0x01, 0x0d}, int8(0), uint8(0x80), uint32(0), uint8(0), uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, level int8, shape uint8, pos uint32, xor uint8, cut uint32) {
		raw := data
		if shape&0x80 == 0 {
			raw = bytes.Clone(deflate(t, fuzzPayload(data, shape), fuzzLevel(level)))
		}
		if len(raw) > 0 && xor != 0 {
			raw[int(pos%uint32(len(raw)))] ^= xor
		}
		if len(raw) > 0 && cut != 0 {
			raw = raw[:int(cut%uint32(len(raw)))]
		}
		want, werr := flateRaw(raw, nil)
		got, err := inflateRaw(bytes.NewReader(raw), nil, fuzzChunk(shape))
		if (err == nil) != (werr == nil) {
			t.Fatalf("ours: %v; compress/flate: %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("different output")
		}
		checkGzipFrame(t, raw, want, shape&0x40 != 0)
	})
}

// checkGzipFrame wraps raw in a gzip header and a trailer for want (which
// only matches when raw decodes to want), optionally with zero padding,
// and compares our Reader with compress/gzip.
func checkGzipFrame(t *testing.T, raw, want []byte, pad bool) {
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	gz = append(gz, raw...)
	gz = binary.LittleEndian.AppendUint32(gz, crc32.ChecksumIEEE(want))
	gz = binary.LittleEndian.AppendUint32(gz, uint32(len(want)))
	if pad {
		gz = append(gz, make([]byte, 5)...)
	}
	zr, werr := gzip.NewReader(bytes.NewReader(gz))
	var gwant []byte
	if werr == nil {
		gwant, werr = io.ReadAll(zr)
	}
	z := NewReader(bytes.NewReader(gz), 1)
	got, err := io.ReadAll(z)
	switch {
	case werr == nil && (err != nil || !bytes.Equal(got, gwant)):
		t.Fatalf("gzip frame: compress/gzip accepts, ours: %v (equal %v)", err, bytes.Equal(got, gwant))
	case werr != nil && err == nil && z.d.padding == 0:
		t.Fatalf("gzip frame: ours accepts, compress/gzip: %v", werr)
	case err == nil:
		x, err := z.Index()
		if err != nil {
			t.Fatal(err)
		}
		checkSpans(t, gz, got, x)
	}
}

// FuzzIndexUnmarshal feeds garbage to UnmarshalBinary, once as is and
// once with a valid checksum so that the fuzzer reaches the parser.
// Anything accepted must survive a round trip and serve reads (errors
// allowed, panics and hangs not) over a real blob.
func FuzzIndexUnmarshal(f *testing.F) {
	data := synthText(200<<10, 5)
	gz := gzipMembers(f, data, flate.BestSpeed, true)
	for _, span := range []int64{1, 20 << 10, 1 << 20} {
		_, x := index(f, gz, span)
		b, _ := x.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte("ZRANIDX\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Index
		x.UnmarshalBinary(b)
		if len(b) < 4 {
			return
		}
		fixed := binary.LittleEndian.AppendUint32(bytes.Clone(b[:len(b)-4]), crc32.Checksum(b[:len(b)-4], castagnoli))
		if err := x.UnmarshalBinary(fixed); err != nil {
			return
		}
		again, _ := x.MarshalBinary()
		var y Index
		if err := y.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded index rejected: %v", err)
		}
		if again2, _ := y.MarshalBinary(); !bytes.Equal(again, again2) {
			t.Fatalf("encoding not stable")
		}
		ra := NewReaderAt(bytes.NewReader(gz), &x)
		for i := range min(x.NumSpans(), 8) {
			ra.DecodeSpan(i)
		}
		p := make([]byte, 5000)
		ra.ReadAt(p, x.Size()/2)
		ra.ReadAt(p, max(0, x.Size()-100))
	})
}
