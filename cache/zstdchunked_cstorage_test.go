package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

// csEntry is an entry of containers/storage's zstd:chunked TOC
// (pkg/chunked/internal/minimal.FileMetadata), as much as it matters here.
type csEntry struct {
	Type        string            `json:"type"`
	Name        string            `json:"name"`
	Linkname    string            `json:"linkName,omitempty"`
	Mode        int64             `json:"mode,omitempty"`
	Size        int64             `json:"size,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	ModTime     *time.Time        `json:"modtime,omitempty"`
	Devmajor    int64             `json:"devMajor,omitempty"`
	Devminor    int64             `json:"devMinor,omitempty"`
	Xattrs      map[string]string `json:"xattrs,omitempty"`
	Digest      string            `json:"digest,omitempty"`
	Offset      int64             `json:"offset,omitempty"`
	EndOffset   int64             `json:"endOffset,omitempty"`
	ChunkSize   int64             `json:"chunkSize,omitempty"`
	ChunkOffset int64             `json:"chunkOffset,omitempty"`
	ChunkDigest string            `json:"chunkDigest,omitempty"`
	ChunkType   string            `json:"chunkType,omitempty"`
}

// csWriter lays a tar stream out as containers/storage's zstd:chunked
// writer (pkg/chunked/compressor) does: the raw tar bytes in zstd frames,
// a new frame at each file's data and at each chunk of it (here every
// chunkSize bytes, where it cuts by rolling checksum), runs of zeros
// marked as such; then skippable frames for the TOC, the tar-split data
// and the 64-byte footer. The decompressed stream is the tar, byte for
// byte. The reader was checked against the real writer (containers/storage
// v1.59.1) too; this one keeps the format under test without it.
type csWriter struct {
	t         testing.TB
	out       bytes.Buffer
	enc       *zstd.Encoder
	chunkSize int
}

func (w *csWriter) frame(b []byte) int64 {
	off := int64(w.out.Len())
	w.out.Write(w.enc.EncodeAll(b, nil))
	return off
}

func (w *csWriter) skippable(b []byte) {
	w.out.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, zstdSkippableMagic), uint32(len(b))))
	w.out.Write(b)
}

// cstorageZstdChunked returns tarb as a containers/storage zstd:chunked
// layer and the annotations podman would give it.
func cstorageZstdChunked(t testing.TB, tarb []byte, chunkSize int) (*testLayer, map[string]string) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	must(t, err)
	w := &csWriter{t: t, enc: enc, chunkSize: chunkSize}
	cr := &countReader{r: bytes.NewReader(tarb)}
	tr := tar.NewReader(cr)
	var toc []csEntry
	var pending int64 // start of the raw bytes not yet in a frame
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		e := csEntryOf(t, h)
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			start := cr.n
			w.frame(tarb[pending:start])
			e.Digest = fmt.Sprintf("sha256:%x", sha256.Sum256(tarb[start:start+h.Size]))
			toc = append(toc, w.chunks(e, tarb[start:start+h.Size])...)
			pending = start + h.Size
			continue
		}
		toc = append(toc, e)
	}
	w.frame(tarb[pending:])
	return w.finish(toc, tarb)
}

// chunks writes a file's data a frame per chunk and returns its entries.
func (w *csWriter) chunks(e csEntry, data []byte) []csEntry {
	var out []csEntry
	for off := 0; off < len(data); off += w.chunkSize {
		c := data[off:min(off+w.chunkSize, len(data))]
		ce := csEntry{Type: "chunk", Name: e.Name, ChunkOffset: int64(off), ChunkSize: int64(len(c)),
			ChunkDigest: fmt.Sprintf("sha256:%x", sha256.Sum256(c))}
		if bytes.Count(c, []byte{0}) == len(c) {
			ce.ChunkType = "zeros"
		}
		ce.Offset = w.frame(c)
		out = append(out, ce)
	}
	end := int64(w.out.Len())
	if len(out) == 1 { // one chunk: the file's digest only
		e.Offset, e.EndOffset = out[0].Offset, end
		return []csEntry{e}
	}
	e.Offset, e.EndOffset, e.ChunkSize, e.ChunkDigest, e.ChunkType = out[0].Offset, end, out[0].ChunkSize, out[0].ChunkDigest, out[0].ChunkType
	return append([]csEntry{e}, out[1:]...)
}

func csEntryOf(t testing.TB, h *tar.Header) csEntry {
	typ := map[byte]string{tar.TypeReg: "reg", tar.TypeLink: "hardlink", tar.TypeSymlink: "symlink", tar.TypeDir: "dir",
		tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo"}[h.Typeflag]
	if typ == "" {
		t.Fatalf("tar entry %s of type %c", h.Name, h.Typeflag)
	}
	mt := h.ModTime
	e := csEntry{Type: typ, Name: h.Name, Linkname: h.Linkname, Mode: h.Mode, Size: h.Size, UID: h.Uid, GID: h.Gid,
		ModTime: &mt, Devmajor: h.Devmajor, Devminor: h.Devminor, Xattrs: map[string]string{}}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			e.Xattrs[name] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	return e
}

// finish appends the TOC, tar-split and footer frames.
func (w *csWriter) finish(toc []csEntry, tarb []byte) (*testLayer, map[string]string) {
	raw, err := json.Marshal(map[string]any{"version": 1, "entries": toc})
	must(w.t, err)
	ctoc := w.enc.EncodeAll(raw, nil)
	tocOff := int64(w.out.Len()) + zstdSkippableHeader
	w.skippable(ctoc)
	split := w.enc.EncodeAll([]byte(`{"type":1,"payload":"not read by ocifs"}`), nil)
	splitOff := int64(w.out.Len()) + zstdSkippableHeader
	w.skippable(split)
	foot := make([]byte, 0, 64)
	for _, v := range []int64{tocOff, int64(len(ctoc)), int64(len(raw)), zstdManifestTypeCRFS, splitOff, int64(len(split)), 41} {
		foot = binary.LittleEndian.AppendUint64(foot, uint64(v))
	}
	w.skippable(append(foot, zstdChunkedMagic64...))
	const annTarSplit = "io.github.containers.zstd-chunked.tarsplit-position"
	ann := map[string]string{
		annContainersZstdChecksum: sha256Hash(ctoc).String(),
		annContainersZstdPosition: fmt.Sprintf("%d:%d:%d:1", tocOff, len(ctoc), len(raw)),
		annTarSplit:               fmt.Sprintf("%d:%d:41", splitOff, len(split)),
	}
	return &testLayer{blob: w.out.Bytes(), tar: tarb, mt: types.OCILayerZStd}, ann
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// csFixture pushes an image (gzip) and its containers/storage zstd:chunked
// copy; it returns the copy's reference, its manifest and the original's
// tree dump, from a full pull.
func csFixture(t *testing.T, lr *lazyRegistry) (ref string, m *v1.Manifest, want []string) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 700<<10+321)
	for i := range big {
		if i < 300<<10 || i >= 500<<10 { // a run of zeros in the middle
			big[i] = byte(rnd.Uint32())
		}
	}
	rnd64 := make([]byte, 64<<10)
	for i := range rnd64 {
		rnd64[i] = byte(rnd.Uint32())
	}
	var small []ti.Entry
	for i := range 30 {
		small = append(small, ti.File(fmt.Sprintf("usr/share/f%02d", i), strings.Repeat(string(rune('a'+i%26)), 50+i*91)))
	}
	late := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	l1 := ti.Layer(append([]ti.Entry{ti.Dir("usr"), ti.Dir("usr/share"), ti.File("big.bin", string(big), ti.Owner(1000, 1000)),
		ti.File("etc/conf", "x=1\n", ti.Xattr("user.tag", []byte{0, 1, 2, 0xff}), ti.MTime(late)), ti.Hardlink("etc/conf.link", "etc/conf"),
		ti.Symlink("lib", "usr/lib"), ti.CharDev("dev/null", 1, 3), ti.File("empty", ""), ti.File("gone", "x"), ti.File("rand.bin", string(rnd64)),
		// an image's own file of a landmark's name and shape: shown, as
		// containers/storage's stream is the original tar
		ti.File(".no.prefetch.landmark", "v")}, small...)...)
	l2 := ti.Layer(ti.Whiteout("gone"), ti.File("etc/conf", "x=2\n"), ti.Opaque("usr/share"), ti.File("usr/share/only", "only\n"))
	orig := lr.addr + "/cs/orig:v1"
	push(t, orig, imageOf(t, "linux/amd64", gzipLayer(t, l1), gzipLayer(t, l2)))
	img, err := openStore(t, "").Pull(context.Background(), orig, PullOptions{})
	must(t, err)
	want = dumpImage(t, img)
	img.Close()

	out := imageOf(t, "linux/amd64")
	for _, tarb := range [][]byte{l1, l2} {
		l, ann := cstorageZstdChunked(t, tarb, 128<<10)
		out, err = mutate.Append(out, mutate.Addendum{Layer: l, MediaType: l.mt, Annotations: ann})
		must(t, err)
	}
	ref = lr.addr + "/cs/zstd-chunked:v1"
	push(t, ref, out)
	m, err = out.Manifest()
	must(t, err)
	return ref, m, want
}

// TestLazyContainersZstdChunked: containers/storage's zstd:chunked (the
// 64-byte footer, one frame per chunk, files of one chunk pinned by their
// file digest, sub-second times and binary xattrs in the TOC, a file named
// as an eStargz landmark) read lazily
// shows the pulled original's tree, from the position annotation (one
// request per layer) or from the footer (two), before and after the
// background fetch, and so does the image pulled whole.
func TestLazyContainersZstdChunked(t *testing.T) {
	lr := startLazyRegistry(t)
	ref, m, want := csFixture(t, lr)
	noPos := m.DeepCopy()
	for _, l := range noPos.Layers {
		delete(l.Annotations, annContainersZstdPosition)
	}
	refNoPos := lr.addr + "/cs/zstd-chunked:nopos"
	pushManifest(t, refNoPos, noPos)
	ctx := context.Background()
	for _, tc := range []struct {
		ref      string
		requests int64
	}{{ref, 1}, {refNoPos, 2}} {
		s := openStore(t, "")
		img, err := s.GetLazy(ctx, tc.ref, PullOptions{}, LazyOptions{})
		must(t, err)
		defer img.Close()
		if !img.Lazy() || img.Layers[0].Content != ContentLazy {
			t.Fatalf("%s: not read lazily", tc.ref)
		}
		if p := img.LazyProgress(); p.Requests != tc.requests*int64(len(img.Layers)) {
			t.Errorf("%s: opening sent %d Range requests for %d layers, want %d each", tc.ref, p.Requests, len(img.Layers), tc.requests)
		}
		sameDump(t, "the lazy containers/storage zstd:chunked image "+tc.ref, dumpImage(t, img), want)
		must(t, img.FetchAll(ctx))
		sameDump(t, "the containers/storage zstd:chunked image after the background fetch", dumpImage(t, img), want)
	}
	pulled, err := openStore(t, "").Pull(ctx, ref, PullOptions{})
	must(t, err)
	defer pulled.Close()
	sameDump(t, "the containers/storage zstd:chunked image pulled whole", dumpImage(t, pulled), want)
}

// TestLazyContainersZstdChunkedCorrupt: a chunk that does not match is
// refused, whether pinned by its chunk digest (big.bin) or, as the one
// chunk of a file, by the file digest (rand.bin). One piece per request,
// so that the corrupted byte (the middle one) is in the piece read.
func TestLazyContainersZstdChunkedCorrupt(t *testing.T) {
	lr := startLazyRegistry(t)
	ref, _, want := csFixture(t, lr)
	img := getLazyQuick(t, ref, LazyOptions{FetchWindow: 1})
	lr.mode.Store(regCorrupt)
	for _, p := range []string{"rand.bin", "big.bin"} {
		if _, err := readPath(img, p); !isErr(err, ErrDigestMismatch) {
			t.Fatalf("reading %s through a corrupting registry: %v, want a digest mismatch", p, err)
		}
	}
	lr.mode.Store(regOK)
	sameDump(t, "the lazy image once the registry is right", dumpImage(t, img), want)
}
