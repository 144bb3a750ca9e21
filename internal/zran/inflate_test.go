package zran

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	kflate "github.com/klauspost/compress/flate"
)

var levels = []int{flate.HuffmanOnly, flate.DefaultCompression, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

func testInputs() map[string][]byte {
	zeros := make([]byte, 200<<10)
	rnd := make([]byte, 100<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	return map[string][]byte{
		"empty":  nil,
		"one":    {'x'},
		"zeros":  zeros,
		"random": rnd,
		"text":   synthText(300<<10, 1),
		"binary": synthBinary(300<<10, 1),
		// every distance up to the window, with stored-friendly noise
		"far": append(append(append([]byte{}, rnd[:WindowSize]...), synthText(10<<10, 2)...), rnd[:WindowSize]...),
	}
}

// TestInflateLevels decodes the output of compress/flate and
// klauspost/compress/flate at every level, with output chunks from one
// byte (a pending copy per match) to large and input one byte at a time.
func TestInflateLevels(t *testing.T) {
	for name, data := range testInputs() {
		for _, level := range levels {
			for ki, enc := range []func() []byte{
				func() []byte { return deflate(t, data, level) },
				func() []byte { return kdeflate(t, data, level) },
			} {
				raw := enc()
				for _, chunk := range []int{1, 257, 4096, outChunk} {
					t.Run(fmt.Sprintf("%s/level%d/k%d/chunk%d", name, level, ki, chunk), func(t *testing.T) {
						if chunk == 1 && len(data) > 64<<10 && (testing.Short() || raceEnabled) {
							t.Skip("slow in -short and -race")
						}
						src := io.Reader(bytes.NewReader(raw))
						if chunk == 257 {
							src = iotest.OneByteReader(src)
						}
						got, err := inflateRaw(src, nil, chunk)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, data) {
							t.Fatalf("got %d bytes, want %d (first difference at %d)", len(got), len(data), firstDiff(got, data))
						}
					})
				}
			}
		}
	}
}

func kdeflate(t testing.TB, data []byte, level int) []byte {
	var buf bytes.Buffer
	fw, err := kflate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	return buf.Bytes()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestInflateDict starts with history, as a resumed decode does.
func TestInflateDict(t *testing.T) {
	dict := synthBinary(40<<10, 7)
	data := append(append([]byte{}, dict[5000:9000]...), synthBinary(100<<10, 8)...)
	for _, level := range []int{1, 6, 9} {
		var buf bytes.Buffer
		fw, _ := flate.NewWriterDict(&buf, level, dict)
		fw.Write(data)
		fw.Close()
		got, err := inflateRaw(bytes.NewReader(buf.Bytes()), dict, 1000)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("level %d: %v, equal %v", level, err, bytes.Equal(got, data))
		}
		// Without the dictionary a back-reference into it reaches too
		// far (if the encoder used the dictionary at all).
		_, werr := flateRaw(buf.Bytes(), nil)
		if _, err := inflateRaw(bytes.NewReader(buf.Bytes()), nil, 1000); (werr != nil) != errors.Is(err, ErrCorrupt) {
			t.Fatalf("level %d without dict: %v, compress/flate %v", level, err, werr)
		}
	}
}

// bitWriter writes deflate bit streams by hand.
type bitWriter struct {
	b  []byte
	nb uint
}

func (w *bitWriter) bits(v uint32, n uint) *bitWriter {
	for i := range n {
		if w.nb%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.nb % 8)
		w.nb++
	}
	return w
}

// code writes a Huffman code MSB first.
func (w *bitWriter) code(c uint32, n uint) *bitWriter {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
	return w
}

func (w *bitWriter) align() *bitWriter {
	w.nb = (w.nb + 7) &^ 7
	return w
}

func (w *bitWriter) bytes(b ...byte) *bitWriter {
	w.align()
	w.b = append(w.b, b...)
	w.nb += 8 * uint(len(b))
	return w
}

// fixedLitCode writes literal/length symbol s in the fixed code.
func (w *bitWriter) fixedLit(s int) *bitWriter {
	switch {
	case s < 144:
		return w.code(uint32(0x30+s), 8)
	case s < 256:
		return w.code(uint32(0x190+s-144), 9)
	case s < 280:
		return w.code(uint32(s-256), 7)
	}
	return w.code(uint32(0xc0+s-280), 8)
}

// dynamicHeader writes a dynamic block header whose code length code
// gives every symbol 0..18 the lengths in clens, then the symbol lengths
// for nlit literal/length and ndist distance codes, each written as a
// plain length symbol (no repeats) with that code.
func (w *bitWriter) dynamicHeader(final bool, clens [19]uint8, lens []uint8, nlit, ndist int) *bitWriter {
	f := uint32(0)
	if final {
		f = 1
	}
	w.bits(f, 1).bits(2, 2).bits(uint32(nlit-257), 5).bits(uint32(ndist-1), 5).bits(15, 4)
	for _, s := range codeOrder {
		w.bits(uint32(clens[s]), 3)
	}
	codes := canonical(clens[:])
	for _, l := range lens {
		w.code(codes[l], uint(clens[l]))
	}
	return w
}

// canonical returns the canonical codes for lengths.
func canonical(lens []uint8) []uint32 {
	var count [16]uint32
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var next [16]uint32
	c := uint32(0)
	for n := 1; n < 16; n++ {
		c = (c + count[n-1]) << 1
		next[n] = c
	}
	out := make([]uint32, len(lens))
	for s, l := range lens {
		if l != 0 {
			out[s] = next[l]
			next[l]++
		}
	}
	return out
}

// flatCLens is a code length code of 16 symbols of length 4 (0..15):
// complete, so any length up to 15 can be written.
var flatCLens = func() (c [19]uint8) {
	for i := range 16 {
		c[i] = 4
	}
	return c
}()

// TestInflateHandmade covers corner cases encoders rarely produce, each
// compared with compress/flate: both must accept with the same output or
// both must fail.
func TestInflateHandmade(t *testing.T) {
	lit8 := func(n int) []uint8 { // n codes of length 9: incomplete for n < 512
		l := make([]uint8, n)
		for i := range l {
			l[i] = 9
		}
		return l
	}
	cases := map[string][]byte{
		"stored": new(bitWriter).bits(1, 1).bits(0, 2).bytes(3, 0, 0xfc, 0xff, 'a', 'b', 'c').b,
		"stored-empty-then-fixed": new(bitWriter).bits(0, 1).bits(0, 2).bytes(0, 0, 0xff, 0xff).
			bits(1, 1).bits(1, 2).fixedLit('z').fixedLit(256).b,
		"stored-bad-nlen":    new(bitWriter).bits(1, 1).bits(0, 2).bytes(3, 0, 0xfc, 0xfe, 'a', 'b', 'c').b,
		"stored-truncated":   new(bitWriter).bits(1, 1).bits(0, 2).bytes(3, 0, 0xfc, 0xff, 'a').b,
		"reserved-type":      new(bitWriter).bits(1, 1).bits(3, 2).bits(0, 16).b,
		"fixed-lit-286":      new(bitWriter).bits(1, 1).bits(1, 2).fixedLit('a').fixedLit(286).bits(0, 16).b,
		"fixed-dist-30":      new(bitWriter).bits(1, 1).bits(1, 2).fixedLit('a').fixedLit(257).code(30, 5).fixedLit(256).b,
		"fixed-too-far":      new(bitWriter).bits(1, 1).bits(1, 2).fixedLit('a').fixedLit(257).code(1, 5).fixedLit(256).b,
		"fixed-overlap":      new(bitWriter).bits(1, 1).bits(1, 2).fixedLit('a').fixedLit('b').fixedLit(284).bits(30, 5).code(1, 5).fixedLit(256).b,
		"fixed-258":          new(bitWriter).bits(1, 1).bits(1, 2).fixedLit('a').fixedLit(285).code(0, 5).fixedLit(256).b,
		"no-final-block":     new(bitWriter).bits(0, 1).bits(1, 2).fixedLit('a').fixedLit(256).b,
		"empty-input":        {},
		"oversubscribed":     new(bitWriter).dynamicHeader(true, flatCLens, append(lit8(257), 1, 1, 1), 257, 3).bits(0, 32).b,
		"incomplete-lit":     new(bitWriter).dynamicHeader(true, flatCLens, append(lit8(257), 1), 257, 1).bits(0, 32).b,
		"single-dist-code":   singleDist(0),
		"dist-code-empty":    new(bitWriter).dynamicHeader(true, flatCLens, append(completeLit(), 0), 257, 1).code(0, 9).code(256, 9).b,
		"repeat-first":       repeatFirst(),
		"hclen-degenerate":   degenerateCLen(),
		"lengths-overflow":   lengthsOverflow(),
		"dist-single-unused": singleDist(1),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			want, werr := flateRaw(raw, nil)
			got, err := inflateRaw(bytes.NewReader(raw), nil, 100)
			if (err == nil) != (werr == nil) {
				t.Fatalf("ours: %v; compress/flate: %v", err, werr)
			}
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("ours %q, compress/flate %q", got, want)
			}
			t.Logf("ours: %v; compress/flate: %v", err, werr)
		})
	}
}

// completeLit gives the 257 literal/length symbols a complete code:
// 255 of length 8 and 2 of length 9.
func completeLit() []uint8 {
	l := make([]uint8, 257)
	for i := range l {
		l[i] = 8
	}
	l[255], l[256] = 9, 9
	return l
}

// singleDist has a degenerate distance code (one code of length 1,
// which zlib and compress/flate accept) and decodes a match with code
// "0" (valid, distance 1) or "1" (no symbol).
func singleDist(code uint32) []byte {
	litLens := make([]uint8, 258) // 256 literals, EOB, symbol 257 (length 3)
	for i := range litLens {
		litLens[i] = 8
	}
	litLens[254], litLens[255], litLens[256], litLens[257] = 9, 9, 9, 9
	lit := canonical(litLens)
	w := new(bitWriter).dynamicHeader(true, flatCLens, append(litLens, 1), 258, 1)
	w.code(lit['a'], uint(litLens['a'])).code(lit[257], 9).bits(code, 1)
	w.code(lit[256], 9)
	return w.b
}

// repeatFirst starts the code lengths with symbol 16 (repeat previous).
func repeatFirst() []byte {
	var c [19]uint8
	c[16], c[8] = 1, 1 // two codes of length 1: complete
	w := new(bitWriter)
	w.bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4)
	for _, s := range codeOrder {
		w.bits(uint32(c[s]), 3)
	}
	codes := canonical(c[:])
	w.code(codes[16], 1).bits(0, 2)
	return w.b
}

// degenerateCLen has a code length code with one code of length 1.
func degenerateCLen() []byte {
	var c [19]uint8
	c[8] = 1
	w := new(bitWriter)
	w.bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4)
	for _, s := range codeOrder {
		w.bits(uint32(c[s]), 3)
	}
	for range 258 {
		w.bits(0, 1) // length 8 each: 258 codes of 8 bits: over-subscribed
	}
	return w.b
}

// lengthsOverflow repeats zeros past HLIT+HDIST.
func lengthsOverflow() []byte {
	var c [19]uint8
	c[18], c[8] = 1, 1
	w := new(bitWriter)
	w.bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4)
	for _, s := range codeOrder {
		w.bits(uint32(c[s]), 3)
	}
	codes := canonical(c[:])
	w.code(codes[8], 1)
	for range 3 {
		w.code(codes[18], 1).bits(127, 7) // 138 zeros each: 415 > 258
	}
	return w.b
}

// TestTableBuildMatchesKraft builds tables from random code lengths and
// checks acceptance against the rule compress/flate applies.
func TestTableBuildMatchesKraft(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tb table
	for range 20000 {
		n := 1 + r.IntN(30)
		lens := make([]uint8, n)
		for i := range lens {
			if r.IntN(3) > 0 {
				lens[i] = uint8(1 + r.IntN(1+r.IntN(maxCodeLen)))
			}
		}
		sum, maxLen, codes := 0.0, 0, 0
		for _, l := range lens {
			if l > 0 {
				sum += 1 / float64(uint(1)<<l)
				maxLen = max(maxLen, int(l))
				codes++
			}
		}
		want := codes == 0 || sum == 1 || (codes == 1 && maxLen == 1)
		if got := tb.build(lens, kindDist, distRoot) == nil; got != want {
			t.Fatalf("lengths %v: accepted %v, want %v", lens, got, want)
		}
	}
}
