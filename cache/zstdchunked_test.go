package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

// TestLazyZstdChunkedMatchesPull: the zstd:chunked conversion (as the
// estargz package writes it) read lazily shows the pulled original's
// tree, before and after the background fetch; its layers cost one Range
// request each to open (the position annotation says where the TOC is);
// and the conversion pulled whole shows the same tree too (landmarks
// hidden).
func TestLazyZstdChunkedMatchesPull(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixtureAs(t, lr, FormatZstdChunked)
	s := openStore(t, "")
	img := getLazy(t, s, conv, LazyOptions{})
	defer img.Close()
	for _, l := range img.Layers {
		if l.Content != ContentLazy || l.MediaType != types.OCILayerZStd {
			t.Fatalf("layer %s (%s) served as %s", l.Digest, l.MediaType, l.Content)
		}
	}
	if p := img.LazyProgress(); p.Requests != int64(len(img.Layers)) {
		t.Errorf("opening sent %d Range requests for %d layers, want one each", p.Requests, len(img.Layers))
	}
	checkSmallRead(t, img, 5)
	sameDump(t, "the lazy zstd:chunked mount", dumpImage(t, img), want)
	checkFetchAll(t, s, img, "the lazy zstd:chunked image", want)

	pulled, err := openStore(t, "").Pull(context.Background(), conv, PullOptions{})
	must(t, err)
	defer pulled.Close()
	sameDump(t, "the zstd:chunked conversion pulled whole", dumpImage(t, pulled), want)
}

// TestLazyZstdChunkedCorruptChunk: chunks that do not match the TOC are
// refused, never served; the reads succeed once the registry is right.
func TestLazyZstdChunkedCorruptChunk(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, _ := lazyFixtureAs(t, lr, FormatZstdChunked)
	img := getLazyQuick(t, conv, LazyOptions{})
	lr.mode.Store(regCorrupt)
	if _, err := readPath(img, "big.bin"); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading corrupted chunks: %v, want a digest mismatch", err)
	}
	lr.mode.Store(regOK)
	b, err := readPath(img, "big.bin")
	must(t, err)
	if len(b) != 3<<20+12345 {
		t.Fatalf("big.bin: %d bytes", len(b))
	}
}

// TestLazyZstdChunkedWithoutRange: a registry that ignores Range gets one
// notice and the zstd:chunked image is pulled whole, with the same tree.
func TestLazyZstdChunkedWithoutRange(t *testing.T) { testLazyWithoutRange(t, FormatZstdChunked) }

// TestLazyZstdChunkedPins: each annotation that can pin the TOC is
// enough on its own (the TOC JSON's digest, the compressed TOC's checksum
// without the position, which costs a footer request); a wrong pin, or
// none, gets the layer pulled whole.
func TestLazyZstdChunkedPins(t *testing.T) {
	lr := startLazyRegistry(t)
	_, conv, want := lazyFixtureAs(t, lr, FormatZstdChunked)
	img, err := openStore(t, "").Pull(context.Background(), conv, PullOptions{})
	must(t, err)
	m := *img.Manifest
	img.Close()
	keep := func(keys ...string) func(map[string]string) {
		return func(a map[string]string) {
			maps.DeleteFunc(a, func(k, _ string) bool { return !strings.Contains(strings.Join(keys, " "), k) })
		}
	}
	for _, tc := range []struct {
		name     string
		edit     func(map[string]string)
		lazy     bool
		requests int64 // per layer, to open it
	}{
		{"toc-json-digest", keep(AnnotationTOCDigest), true, 2},
		{"checksum-only", keep(annZstdChunkedChecksum), true, 2},
		{"checksum-and-position", keep(annZstdChunkedChecksum, annZstdChunkedPosition), true, 1},
		{"wrong-checksum", func(a map[string]string) { a[annZstdChunkedChecksum] = "sha256:" + strings.Repeat("0", 64) }, false, 0},
		{"no-pin", keep(annZstdChunkedPosition), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m2 := m
			m2.Layers = append(m.Layers[:0:0], m.Layers...)
			for i := range m2.Layers {
				m2.Layers[i].Annotations = maps.Clone(m.Layers[i].Annotations)
				tc.edit(m2.Layers[i].Annotations)
			}
			ref := lr.addr + "/lazy/conv:" + tc.name
			pushManifest(t, ref, &m2)
			got := getLazy(t, openStore(t, ""), ref, LazyOptions{})
			defer got.Close()
			if got.Lazy() != tc.lazy {
				t.Fatalf("read lazily: %v, want %v", got.Lazy(), tc.lazy)
			}
			if p := got.LazyProgress(); tc.lazy && p.Requests != tc.requests*int64(len(m2.Layers)) {
				t.Errorf("opening sent %d Range requests for %d layers, want %d each", p.Requests, len(m2.Layers), tc.requests)
			}
			sameDump(t, "the image", dumpImage(t, got), want)
		})
	}
}

// TestHideZstdChunkedArtifactsNeedsItsSignature: landmarks are hidden only
// in a tar stream shaped as the estargz package writes zstd:chunked (no
// end-of-archive blocks); an ordinary layer keeps a file of that name.
func TestHideZstdChunkedArtifactsNeedsItsSignature(t *testing.T) {
	full := ti.Layer(ti.File(".no.prefetch.landmark", "\x0f"), ti.Dir("etc"), ti.File("etc/a", "abc"))
	cut := full[:len(full)-1024] // without the end-of-archive blocks
	for _, tc := range []struct {
		name   string
		stream []byte
		want   int
	}{{"with end-of-archive", full, 3}, {"without", cut, 2}} {
		res, err := tarindex.Scan(bytes.NewReader(tc.stream))
		must(t, err)
		if got := len(hideZstdChunkedArtifacts(res, int64(len(tc.stream))).Layer.Entries); got != tc.want {
			t.Errorf("%s: %d entries kept, want %d", tc.name, got, tc.want)
		}
	}
	plain := ti.Layer(ti.File("etc/a", "abc"))
	res, err := tarindex.Scan(bytes.NewReader(plain[:len(plain)-1024]))
	must(t, err)
	if got := len(hideZstdChunkedArtifacts(res, int64(len(plain)-1024)).Layer.Entries); got != 1 {
		t.Errorf("a stream without landmark lost entries: %d kept", got)
	}
}

// TestParseZstdChunkedFooter: both footers are read; anything else is
// refused rather than guessed at.
func TestParseZstdChunkedFooter(t *testing.T) {
	footer := func(size int, magic []byte, typ uint64, skipSize uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, zstdSkippableMagic)
		b = binary.LittleEndian.AppendUint32(b, skipSize)
		f := make([]byte, size-8)
		binary.LittleEndian.PutUint64(f, 1000)
		binary.LittleEndian.PutUint64(f[8:], 200)
		binary.LittleEndian.PutUint64(f[16:], 900)
		binary.LittleEndian.PutUint64(f[24:], typ)
		return append(append(append([]byte("padding bytes before"), b...), f...), magic...)
	}
	for _, tc := range []struct {
		name string
		tail []byte
		ok   bool
	}{
		{"estargz 40", footer(40, zstdChunkedMagic40, 1, 40), true},
		{"containers/storage 64", footer(64, zstdChunkedMagic64, 1, 64), true},
		{"40 with the 64 magic", footer(40, zstdChunkedMagic64, 1, 40), false},
		{"unknown TOC type", footer(40, zstdChunkedMagic40, 2, 40), false},
		{"not in a skippable frame of its size", footer(40, zstdChunkedMagic40, 1, 41), false},
		{"no magic", bytes.Repeat([]byte{7}, 72), false},
		{"short", zstdChunkedMagic40, false},
	} {
		loc, err := parseZstdChunkedFooter(tc.tail)
		if (err == nil) != tc.ok || (tc.ok && loc != (zstdTOCLocation{off: 1000, clen: 200, ulen: 900})) {
			t.Errorf("%s: %+v, %v", tc.name, loc, err)
		}
	}
	if p := parseZstdPosition("1000:200:900:1"); p == nil || *p != (zstdTOCLocation{off: 1000, clen: 200, ulen: 900}) {
		t.Errorf("position: %+v", p)
	}
	for _, s := range []string{"", "1000:200:900", "1000:200:900:2", "a:200:900:1", "-1:200:900:1"} {
		if p := parseZstdPosition(s); p != nil {
			t.Errorf("position %q read as %+v", s, p)
		}
	}
}

// TestZstdMemberReadsNoFurtherThanAsked: a member that inflates far
// beyond its chunk costs the chunk and a window, not what it inflates to.
func TestZstdMemberReadsNoFurtherThanAsked(t *testing.T) {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	must(t, err)
	comp := zw.EncodeAll(make([]byte, 64<<20), nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, release, err := zstdMember(comp)
	must(t, err)
	if _, err := io.CopyN(io.Discard, r, 4096); err != nil {
		t.Fatal(err)
	}
	release()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 24<<20 {
		t.Fatalf("reading 4 KiB of a %d-byte member that inflates to 64 MiB allocated %d MiB", len(comp), n>>20)
	}
}
