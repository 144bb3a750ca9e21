package cache

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/overlay"
)

// Hostile layers: each is pulled through the in-process registry into a
// store with the limits given, and must fail with a clear error naming
// the layer (and the entry) or be served.

// pullHostile pushes an image of layers and pulls it into a fresh store
// with the limits; it returns the store, the pulled image (nil on error)
// and the error.
func pullHostile(t *testing.T, lim Limits, layers ...*testLayer) (*Store, *Image, error) {
	t.Helper()
	host, _ := startRegistry(t)
	ref := host + "/test/hostile:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	s, err := Open(t.TempDir(), Options{Limits: lim})
	must(t, err)
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	if err == nil {
		t.Cleanup(func() { img.Close() })
	}
	return s, img, err
}

// wantLimit checks that err is a *LimitError of the named limit whose
// message names the layer and contains each of texts.
func wantLimit(t *testing.T, err error, limit string, l *testLayer, texts ...string) {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != limit || !errors.Is(err, ErrLimit) || !errors.Is(err, ErrInvalidImage) {
		t.Fatalf("err = %v (%T), want a *LimitError for %s", err, err, limit)
	}
	for _, s := range append(texts, l.digest().String()) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if len(err.Error()) > 1000 {
		t.Errorf("error message of %d bytes: hostile names must be shortened", len(err.Error()))
	}
}

// wantInvalid checks for a plain image error naming the layer.
func wantInvalid(t *testing.T, err error, l *testLayer, texts ...string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidImage) || errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrInvalidImage (not a limit)", err)
	}
	for _, s := range append(texts, l.digest().String()) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// checkStoreClean asserts that a failed pull left no temp file and nothing
// of the layer under a final name.
func checkStoreClean(t *testing.T, s *Store, l *testLayer) {
	t.Helper()
	checkNoTemps(t, s)
	for _, p := range []string{s.indexPath(l.diffID()), s.unpackedPath(l.diffID())} {
		if exists(p) {
			t.Errorf("%s exists after a failed pull", p)
		}
	}
}

func TestHostileTooManyEntries(t *testing.T) {
	var es []ti.Entry
	for i := range 11 {
		es = append(es, ti.File("f"+strings.Repeat("x", i), ""))
	}
	l := gzipLayer(t, ti.Layer(es...))
	s, _, err := pullHostile(t, Limits{MaxEntries: 10}, l)
	wantLimit(t, err, LimitEntries, l, `entry "fxxxxxxxxxx"`, "entry number 11")
	checkStoreClean(t, s, l)
	if _, _, err := pullHostile(t, Limits{MaxEntries: 11}, l); err != nil {
		t.Fatalf("11 entries with a limit of 11: %v", err)
	}
}

func TestHostileLongNames(t *testing.T) {
	comp := strings.Repeat("n", 255)
	name4k := strings.Repeat(comp[:254]+"/", 16) + strings.Repeat("m", 16)
	if len(name4k) != 4096 {
		t.Fatalf("fixture: %d bytes", len(name4k))
	}
	ok := gzipLayer(t, ti.Layer(ti.File(name4k, "4k"), ti.Symlink("link", name4k)))
	_, img, err := pullHostile(t, Limits{}, ok)
	must(t, err)
	idx, err := img.Indexes(context.Background())
	must(t, err)
	if got := idx[0].Entries[0].Name; got != name4k {
		t.Fatalf("4 KiB name came back as %d bytes", len(got))
	}
	tree, err := overlay.Merge(idx)
	must(t, err)
	if tree.Get(name4k) == nil {
		t.Fatal("the 4 KiB path is not in the merged tree")
	}

	long := gzipLayer(t, ti.Layer(ti.File(name4k+"x", "")))
	_, _, err = pullHostile(t, Limits{}, long)
	wantLimit(t, err, LimitName, long, "name of 4097 bytes", "(4097 bytes)")

	target := gzipLayer(t, ti.Layer(ti.Symlink("l", "/"+name4k)))
	_, _, err = pullHostile(t, Limits{}, target)
	wantLimit(t, err, LimitName, target, `entry "l"`, "link target of 4097 bytes")

	comp256 := gzipLayer(t, ti.Layer(ti.File("d/"+comp+"x", "")))
	_, _, err = pullHostile(t, Limits{}, comp256)
	wantInvalid(t, err, comp256, "path component of 256 bytes is longer than Linux allows")

	wh := gzipLayer(t, ti.Layer(ti.Whiteout(comp)))
	if _, _, err := pullHostile(t, Limits{}, wh); err != nil {
		t.Fatalf("whiteout of a 255-byte name: %v", err)
	}
}

// TestHostileDeepPath: a 65,535-deep path is a name of 128 KiB. The
// default name limit refuses it; without limits it is indexed and merged.
func TestHostileDeepPath(t *testing.T) {
	deep := strings.Repeat("d/", 65534) + "f"
	l := gzipLayer(t, ti.Layer(ti.File(deep, "deep")))
	s, _, err := pullHostile(t, Limits{}, l)
	wantLimit(t, err, LimitName, l, "name of 131069 bytes")
	checkStoreClean(t, s, l)

	_, img, err := pullHostile(t, Limits{MaxName: -1}, l)
	must(t, err)
	idx, err := img.Indexes(context.Background())
	must(t, err)
	start := time.Now()
	tree, err := overlay.Merge(idx)
	must(t, err)
	if n := tree.Get(deep); n == nil || n.Size() != 4 {
		t.Fatal("the deep file is not in the merged tree")
	}
	t.Logf("65,535-deep path merged in %v; %d nodes", time.Since(start), tree.Len())
}

func TestHostileXattrs(t *testing.T) {
	big := gzipLayer(t, ti.Layer(ti.File("f", "", ti.Xattr("user.big", bytes.Repeat([]byte{1}, 64<<10+1)))))
	_, _, err := pullHostile(t, Limits{}, big)
	wantLimit(t, err, LimitXattr, big, `entry "f"`, `xattr "user.big" of 65537 bytes`)

	fits := gzipLayer(t, ti.Layer(ti.File("f", "", ti.Xattr("user.big", bytes.Repeat([]byte{1}, 64<<10)))))
	if _, _, err := pullHostile(t, Limits{}, fits); err != nil {
		t.Fatalf("64 KiB xattr: %v", err)
	}

	longName := gzipLayer(t, ti.Layer(ti.File("f", "", ti.Xattr("user."+strings.Repeat("x", 251), []byte("v")))))
	_, _, err = pullHostile(t, Limits{}, longName)
	wantInvalid(t, err, longName, `entry "f"`, "xattr name of 256 bytes is longer than Linux allows")
}

// TestHostileGiantPAX: archive/tar refuses PAX headers over 1 MiB; the
// error names the offset and the entry before it.
func TestHostileGiantPAX(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "before", Typeflag: tar.TypeReg, Mode: 0o644}))
	must(t, tw.Flush())
	rec := "user.comment=" + strings.Repeat("p", 2<<20)
	buf.Write(paxRecordBlock(t, rec))
	must(t, tw.Close())
	l := gzipLayer(t, buf.Bytes())
	_, _, err := pullHostile(t, Limits{}, l)
	wantInvalid(t, err, l, "offset 512", `after entry "before"`)
}

// paxRecordBlock is a PAX extended header ('x') whose data is one record
// of any length, followed by the file it describes. archive/tar's writer
// refuses records this large, so the blocks are written by hand.
func paxRecordBlock(t *testing.T, rec string) []byte {
	t.Helper()
	n := len(rec) + 2
	for l := len(itoa(n)) + 1 + len(rec) + 1; l != n; l = len(itoa(n)) + 1 + len(rec) + 1 {
		n = l
	}
	data := itoa(n) + " " + rec + "\n"
	var out bytes.Buffer
	out.Write(rawHeader('x', "PaxHeaders/f", int64(len(data))))
	out.WriteString(data)
	out.Write(make([]byte, (512-len(data)%512)%512))
	out.Write(rawHeader('0', "f", 0))
	return out.Bytes()
}

func itoa(n int) string {
	s := ""
	for ; n > 0 || s == ""; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// rawHeader is a ustar header block, written by hand so that it may lie.
func rawHeader(typ byte, name string, size int64) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	if size < 1<<33 {
		copy(b[124:], octal(size, 12))
	} else { // base-256, as GNU tar writes sizes of 8 GiB and more
		b[124] = 0x80
		binary.BigEndian.PutUint64(b[128:136], uint64(size))
	}
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	return fixChecksum(b)
}

func fixChecksum(b []byte) []byte {
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], octal(int64(sum), 7)+"\x00")
	return b
}

func octal(n int64, width int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	for len(s) < width-1 {
		s = "0" + s
	}
	return s + "\x00"
}

// TestHostileLyingSizes: a header that declares more data than the stream
// has, and one that declares less than it carries.
func TestHostileLyingSizes(t *testing.T) {
	tooBig := append(rawHeader('0', "liar", 1<<40), bytes.Repeat([]byte("x"), 4096)...)
	l := gzipLayer(t, tooBig)
	_, _, err := pullHostile(t, Limits{}, l)
	wantLimit(t, err, LimitLayerSize, l, `entry "liar"`)

	_, _, err = pullHostile(t, Limits{MaxLayerSize: -1}, l)
	wantInvalid(t, err, l, `entry "liar"`, "stream ends at offset 4608, inside its data")

	var tooSmall []byte
	tooSmall = append(tooSmall, rawHeader('0', "short", 10)...)
	tooSmall = append(tooSmall, bytes.Repeat([]byte("y"), 2048)...)
	tooSmall = append(tooSmall, make([]byte, 1024)...)
	l = gzipLayer(t, tooSmall)
	_, _, err = pullHostile(t, Limits{}, l)
	wantInvalid(t, err, l, "reading tar header at offset 1024", `after entry "short"`)
}

func TestHostileTruncatedStreams(t *testing.T) {
	tarb := ti.Layer(ti.File("a", strings.Repeat("abcdefgh", 8192)), ti.File("b", "b"))
	for _, l := range []*testLayer{gzipLayer(t, tarb), zstdLayer(t, tarb)} {
		cut := &testLayer{blob: l.blob[:len(l.blob)/2], tar: l.tar, mt: l.mt}
		s, _, err := pullHostile(t, Limits{}, cut)
		wantInvalid(t, err, cut, "decompressing", "unexpected EOF")
		checkStoreClean(t, s, cut)
	}
}

// TestHostileDecompressionBomb: a small blob that inflates without end is
// stopped at MaxLayerSize of uncompressed bytes, whatever its tar says,
// and nothing of it stays on disk.
func TestHostileDecompressionBomb(t *testing.T) {
	const limit = 32 << 20
	for name, l := range map[string]*testLayer{
		// 1 TiB of zeros after a valid tar's end, in 32 MiB of zstd.
		"zstd, 1 TiB after the tar": {blob: zstdZeros(t, ti.Layer(ti.File("a", "a")), 1<<40), mt: types.OCILayerZStd},
		// 4 GiB of zeros in 4 MiB of gzip, declared as one file.
		"gzip, one 4 GiB file": {blob: gzipZeros(t, rawHeader('0', "huge", 4<<30), 4<<30), mt: types.OCILayer},
		// The same without the declared size: a tar of zeros ends at its
		// first block; the rest is trailing data.
		"gzip, 4 GiB after the tar": {blob: gzipZeros(t, nil, 4<<30), mt: types.OCILayer},
	} {
		t.Run(name, func(t *testing.T) {
			l.tar = []byte("not computed: the config's diffID is never reached")
			t.Logf("bomb blob: %d bytes", len(l.blob))
			start := time.Now()
			s, _, err := pullHostile(t, Limits{MaxLayerSize: limit}, l)
			wantLimit(t, err, LimitLayerSize, l)
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("stopping the bomb took %v", d)
			}
			checkStoreClean(t, s, l)
			if u := diskUsage(t, s.Dir()); u > limit+(1<<20) {
				t.Errorf("store holds %d bytes after the bomb", u)
			}
		})
	}
}

func diskUsage(t *testing.T, dir string) int64 {
	var n int64
	must(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	}))
	return n
}

// TestHostileMillionEntries: 10^6 entries in one layer are served within
// the default limits, and the image's index memory is what the limit
// accounts.
func TestHostileMillionEntries(t *testing.T) {
	const dirs, files = 1000, 1000
	start := time.Now()
	l := manyEntries(t, dirs, files)
	t.Logf("layer: %d entries, %d-byte gzip blob, made in %v", dirs*(files+2), len(l.blob), time.Since(start))
	start = time.Now()
	_, img, err := pullHostile(t, Limits{}, l)
	must(t, err)
	t.Logf("pulled in %v", time.Since(start))
	if got := img.Layers[0].Entries; got != dirs*(files+2) {
		t.Fatalf("index has %d entries", got)
	}
	start = time.Now()
	idx, err := img.Indexes(context.Background())
	must(t, err)
	tree, err := overlay.Merge(idx)
	must(t, err)
	t.Logf("loaded and merged in %v: %d nodes; index memory about %d MiB", time.Since(start), tree.Len(), img.Layers[0].indexMemory()>>20)
	if n := tree.Get("d999/f999"); n == nil || n.Size() != 0 || tree.Get("cur").Target() != "d999" {
		t.Fatal("last file missing")
	}
	img.store.limits.MaxIndexMemory = img.Layers[0].indexMemory() - 1
	_, err = img.Indexes(context.Background())
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitIndexMemory {
		t.Fatalf("loading with a smaller memory limit: %v", err)
	}
}

// manyEntries is a gzip layer of dirs directories of files empty files
// each. Each directory is made current through a symlink "cur" (parent
// symlinks resolve inside the tree), so that the files' entries,
// "cur/f000"..., are the same bytes for every directory: their deflate
// chunk is compressed once and repeated, and making the 10^6-entry layer
// costs little more than its CRC and diffID.
func manyEntries(t *testing.T, dirs, files int) *testLayer {
	var chunk bytes.Buffer
	for f := range files {
		chunk.Write(rawHeader('0', fmt.Sprintf("cur/f%03d", f), 0))
	}
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	crc, diff, size := crc32.NewIEEE(), sha256.New(), int64(0)
	deflated := func(b []byte) []byte {
		var c bytes.Buffer
		fw, err := flate.NewWriter(&c, flate.BestSpeed)
		must(t, err)
		fw.Write(b)
		must(t, fw.Flush()) // a sync flush: chunks concatenate
		crc.Write(b)
		diff.Write(b)
		size += int64(len(b))
		return c.Bytes()
	}
	files1 := deflated(chunk.Bytes())
	crc.Reset()
	diff.Reset()
	size = 0
	for d := range dirs {
		dn := fmt.Sprintf("d%03d", d)
		out.Write(deflated(append(rawHeader('5', dn+"/", 0), rawSymlink("cur", dn)...)))
		out.Write(files1)
		crc.Write(chunk.Bytes())
		diff.Write(chunk.Bytes())
		size += int64(chunk.Len())
	}
	out.Write(deflated(make([]byte, 1024)))
	fw, err := flate.NewWriter(&out, flate.BestSpeed)
	must(t, err)
	must(t, fw.Close()) // the final block
	out.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc.Sum32()), uint32(size)))
	return &testLayer{blob: out.Bytes(), diff: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}, mt: types.OCILayer}
}

func rawSymlink(name, target string) []byte {
	b := rawHeader('2', name, 0)
	copy(b[157:], target)
	return fixChecksum(b)
}
