package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// Compact mode (issue 7) against unpacked mode, through the real binary,
// the real registry and real mounts: the same walk (content hashes
// included), the same ext4 bytes, and a cache that holds little beyond
// the blobs.

// framedLayer is a zstd layer written as one frame per 64 KiB of tar, as
// seekable-zstd and zstd:chunked writers do, so that compact mode reads
// it frame by frame.
type framedLayer struct {
	blob, tar []byte
}

var _ v1.Layer = (*framedLayer)(nil)

func newFramedLayer(t *testing.T, tarb []byte) *framedLayer {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var blob []byte
	for i := 0; i < len(tarb); i += 64 << 10 {
		blob = enc.EncodeAll(tarb[i:min(i+64<<10, len(tarb))], blob)
	}
	return &framedLayer{blob: blob, tar: tarb}
}

func (l *framedLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.blob))
	return h, err
}
func (l *framedLayer) DiffID() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.tar))
	return h, err
}
func (l *framedLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *framedLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tar)), nil
}
func (l *framedLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *framedLayer) MediaType() (types.MediaType, error) { return types.OCILayerZStd, nil }

// compactImage builds an image whose layers are, in turn, gzip,
// multi-frame zstd, uncompressed and gzip: one of each way compact mode
// serves a layer.
func compactImage(t *testing.T, layers [][]byte) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for i, tb := range layers {
		var l v1.Layer
		var err error
		switch i % 4 {
		case 1:
			l = newFramedLayer(t, tb)
		case 2:
			l, err = ti.NewLayer(tb, ti.Uncompressed, false)
		default:
			l, err = ti.NewLayer(tb, ti.Gzip, false)
		}
		if err == nil {
			img, err = mutate.Append(img, mutate.Addendum{Layer: l})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// bigLayers is a stack whose layers each hold a few MiB of text-like
// files (several gzip spans, dozens of zstd frames), with a whiteout and
// a rewrite across layers.
func bigLayers(seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 5))
	words := strings.Fields("the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet usr lib share doc")
	text := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" \n"[r.IntN(2)])
		}
		return b.String()[:n]
	}
	var out [][]byte
	for l := range 3 {
		var es []ti.Entry
		for i := range 150 {
			es = append(es, ti.File(fmt.Sprintf("usr/share/l%d/d%02d/f%03d", l, i%10, i), text(1000+r.IntN(60000))))
		}
		if l > 0 {
			es = append(es, ti.Whiteout(fmt.Sprintf("usr/share/l%d/d03", l-1)),
				ti.File(fmt.Sprintf("usr/share/l%d/d04/f004", l-1), text(5000)))
		}
		out = append(out, ti.Layer(es...))
	}
	return out
}

func compactCases(t *testing.T) map[string][][]byte {
	cases := map[string][][]byte{"rules": rulesLayers(), "big": bigLayers(1)}
	for seed := uint64(11); seed <= 13; seed++ {
		cases[fmt.Sprintf("random-%d", seed)] = ti.Random(t, seed, 4, 120)
	}
	return cases
}

// modeEnv runs ocifs in mode with its own cache directory.
func modeEnv(t *testing.T, dir, mode string) []string {
	return []string{"OCIFS_CACHE_DIR=" + dir, "OCIFS_CACHE_MODE=" + mode}
}

// lsLayer is a layer of `ocifs cache ls --json`.
type lsLayer struct {
	MediaType string
	Size      int64
	Unpacked  int64
	Seek      int64
	Content   string
}

type lsImageJSON struct {
	Ref                                string
	Size, Unpacked, Index, Seek, Trees int64
	Disk                               int64
	Problem                            string
	Layers                             []lsLayer
}

func lsJSON(t *testing.T, env []string) []lsImageJSON {
	t.Helper()
	var out []lsImageJSON
	if err := json.Unmarshal([]byte(mustOcifs(t, env, "cache", "ls", "--json")), &out); err != nil {
		t.Fatalf("cache ls --json: %v", err)
	}
	return out
}

// TestCompactMountMatchesUnpacked mounts each image in both modes and
// compares full walks (lstat, readlink, xattrs, content hashes, hardlink
// groups), field for field with mtimes; checks how compact mode serves
// each layer; and bounds compact mode's disk use.
func TestCompactMountMatchesUnpacked(t *testing.T) {
	reg := testregistry.Start(t)
	for name, layers := range compactCases(t) {
		t.Run(name, func(t *testing.T) {
			ref := reg.Repo("compact-"+name) + ":v1"
			ti.Push(t, compactImage(t, layers), ref)
			compact, unpacked := modeEnv(t, t.TempDir(), "compact"), modeEnv(t, t.TempDir(), "unpacked")
			got := walkMount(t, mountImageEnv(t, compact, ref))
			want := walkMount(t, mountImageEnv(t, unpacked, ref))
			requireNoDiff(t, "compact mount (a) vs unpacked mount (b)", got, want, exact)
			if len(got) < 20 {
				t.Fatalf("only %d paths; the fixture is broken", len(got))
			}
			checkCompactLs(t, compact, len(layers))
			mustOcifs(t, compact, "cache", "verify")
		})
	}
}

// checkCompactLs checks that compact mode keeps no unpacked copy, serves
// every layer from its blob, and that what serves content (blobs, seek
// indexes, copies) is at most 1.1 times the layer blobs. Metadata (layer
// indexes, the merged tree) is logged: on these small images it weighs
// more than on real ones (TestCompactDiskOnRealisticImage bounds it).
func checkCompactLs(t *testing.T, env []string, nLayers int) {
	t.Helper()
	ls := lsJSON(t, env)
	if len(ls) != 1 || ls[0].Problem != "" || len(ls[0].Layers) != nLayers {
		t.Fatalf("cache ls: %+v", ls)
	}
	im := ls[0]
	want := []string{"gzip-seek", "zstd-frames", "blob", "gzip-seek"}
	for i, l := range im.Layers {
		if l.Content != want[i%4] || l.Unpacked != 0 || (l.Content != "blob") != (l.Seek > 0) {
			t.Errorf("layer %d (%s): %+v, want served as %s with no unpacked copy", i, l.MediaType, l, want[i%4])
		}
	}
	content := float64(im.Size+im.Seek+im.Unpacked) / float64(im.Size)
	total := float64(im.Disk) / float64(im.Size)
	t.Logf("compact cache: layer blobs %d B, seek indexes %d B, layer indexes %d B, trees %d B, all files %d B: "+
		"content %.3f×, everything %.3f× the layer blobs", im.Size, im.Seek, im.Index, im.Trees, im.Disk, content, total)
	if content > 1.1 {
		t.Errorf("compact mode stores %.3f× the layer blobs for content, want ≤ 1.1", content)
	}
}

// mountImageEnv is mountImage with an environment for ocifs.
func mountImageEnv(t *testing.T, env []string, ref string, args ...string) string {
	t.Helper()
	requireFUSEMount(t)
	dir := mountDir(t)
	mustOcifs(t, env, append(append([]string{"mount"}, args...), ref, dir)...)
	t.Cleanup(func() {
		if isMountPoint(dir) {
			if _, stderr, code := runOcifs(t, env, "umount", dir); code != 0 {
				t.Errorf("ocifs umount %s: exit %d: %s", dir, code, stderr)
			}
		}
	})
	return dir
}

// TestCompactDiskOnRealisticImage: with layers of a few MiB, everything
// compact mode keeps (blobs, manifests, layer and seek indexes, the saved
// merged tree) is within 1.1 times the compressed layers.
func TestCompactDiskOnRealisticImage(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("compact-disk") + ":v1"
	ti.Push(t, compactImage(t, bigLayers(2)), ref)
	env := modeEnv(t, t.TempDir(), "compact")
	walkMount(t, mountImageEnv(t, env, ref)) // saves the merged tree
	im := lsJSON(t, env)[0]
	if r := float64(im.Disk) / float64(im.Size); r > 1.1 || im.Trees == 0 {
		t.Errorf("compact cache: %d bytes in all (trees %d) for %d bytes of layer blobs: %.3f×, want ≤ 1.1", im.Disk, im.Trees, im.Size, r)
	}
}

// TestCompactBuildIdentical builds each image in both modes: the ext4
// images are byte-identical and e2fsck-clean; the compact build of the
// big image decodes spans ahead of mkfs and releases them once read (its
// --debug span stats say so).
func TestCompactBuildIdentical(t *testing.T) {
	requireBuild(t)
	reg := testregistry.Start(t)
	for _, name := range []string{"rules", "big", "random-11"} {
		layers := compactCases(t)[name]
		t.Run(name, func(t *testing.T) {
			ref := reg.Repo("compact-build-"+name) + ":v1"
			ti.Push(t, compactImage(t, layers), ref)
			var sums []string
			for _, mode := range []string{"compact", "unpacked"} {
				out := filepath.Join(t.TempDir(), mode+".ext4")
				_, stderr, code := runOcifs(t, modeEnv(t, t.TempDir(), mode), "--debug", "build", ref, out)
				if code != 0 {
					t.Fatalf("ocifs build (%s) exited %d: %s", mode, code, stderr)
				}
				if mode == "compact" && name == "big" { // tiny layers may be read before DecodeAhead gets to them
					checkSpanStats(t, stderr)
				}
				fsck(t, out)
				sums = append(sums, fileSHA256(t, out))
			}
			if sums[0] != sums[1] {
				t.Errorf("ext4 images differ: compact %s, unpacked %s", sums[0], sums[1])
			}
		})
	}
}

// TestCompactModeSwitch switches one cache between modes through the
// CLI: unpacked mode rebuilds the copies a compact pull did not keep,
// compact prune evicts them while an unpacked mount keeps
// serving them, and --max-unpacked evicts under a budget.
func TestCompactModeSwitch(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("compact-switch") + ":v1"
	ti.Push(t, compactImage(t, bigLayers(3)), ref)
	dir := t.TempDir()
	compact, unpacked := modeEnv(t, dir, "compact"), modeEnv(t, dir, "unpacked")
	mustOcifs(t, compact, "pull", ref)

	mnt := mountImageEnv(t, unpacked, ref) // rebuilds the copies from the blobs
	before := walkMount(t, mnt)
	for i, l := range lsJSON(t, unpacked)[0].Layers {
		if (l.Content == "unpacked") != (i%4 != 2) {
			t.Errorf("unpacked mode, layer %d: %+v", i, l)
		}
	}
	out := mustOcifs(t, compact, "cache", "prune")
	if strings.Count(out, "ocifs/unpacked/") != 2 {
		t.Errorf("compact prune: %s (want both copies evicted)", out)
	}
	requireNoDiff(t, "unpacked mount after its copies were evicted (a) vs before (b)", walkMount(t, mnt), before, exact)
	if ls := lsJSON(t, compact)[0]; ls.Unpacked != 0 || ls.Problem != "" {
		t.Errorf("after compact prune: %+v", ls)
	}
	requireNoDiff(t, "compact mount (a) vs unpacked mount (b)", walkMount(t, mountImageEnv(t, compact, ref)), before, exact)

	mountImageEnv(t, unpacked, ref) // copies back
	out = mustOcifs(t, unpacked, "cache", "prune", "--max-unpacked", "0")
	if strings.Count(out, "ocifs/unpacked/") != 2 {
		t.Errorf("prune --max-unpacked 0: %s", out)
	}
	mustOcifs(t, compact, "cache", "verify")
}

var spanStatsRE = regexp.MustCompile(`spans: (\d+) decoded \((\d+) by readers that missed\), \d+ queued to read ahead, (\d+) decoded ahead in walk order, .* (\d+) released`)

// checkSpanStats checks a compact build's --debug span stats: spans were
// decoded ahead in walk order (Image.DecodeAhead) and released once read.
func checkSpanStats(t *testing.T, stderr string) {
	t.Helper()
	m := spanStatsRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no span stats in the build's debug log:\n%s", stderr)
	}
	decoded, _ := strconv.Atoi(m[1])
	ahead, _ := strconv.Atoi(m[3])
	released, _ := strconv.Atoi(m[4])
	if decoded == 0 || ahead == 0 || released == 0 {
		t.Errorf("compact build: %s; want spans decoded ahead and released", m[0])
	}
}
