package cache

import (
	"bytes"
	"context"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pullOffline pulls layers into a store in mode at dir and closes the
// registry, so that whatever the test does next must work offline.
func pullOffline(t *testing.T, dir string, mode Mode, layers ...*testLayer) (*Store, string) {
	t.Helper()
	host, srv := startRegistry(t)
	ref := host + "/test/modes:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	s := openStoreMode(t, dir, mode)
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	img.Close()
	srv.Close()
	return s, ref
}

func getImage(t *testing.T, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	t.Cleanup(func() { img.Close() })
	return img
}

func contentKinds(img *Image) string {
	var k []string
	for _, l := range img.Layers {
		k = append(k, string(l.Content))
	}
	return strings.Join(k, " ")
}

func checkVerifyCleanStore(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Verify(context.Background(), VerifyOptions{})
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("verify: %v %+v", err, rep)
	}
}

// TestModeSwitchBothWays: a cache filled in compact mode gets its copies
// rebuilt (offline) when used in unpacked mode; Prune in compact mode then
// evicts them again, except the copy a single-frame zstd layer needs.
func TestModeSwitchBothWays(t *testing.T) {
	layers := contentLayers(t)
	dir := t.TempDir()
	compact, ref := pullOffline(t, dir, ModeCompact, layers...)
	img := getImage(t, compact, ref)
	if got := contentKinds(img); got != "gzip-seek zstd-frames unpacked blob" {
		t.Fatalf("compact pull: layers served as %s", got)
	}

	unpacked := openStoreMode(t, dir, ModeUnpacked)
	// Copies that only the mode lacks are no problem for List or Verify.
	checkVerifyCleanStore(t, unpacked)
	infos, err := unpacked.List()
	must(t, err)
	if l := infos[0].Layers[0]; infos[0].Problem != "" || l.Content != "" || !strings.Contains(l.Note, "next use") {
		t.Errorf("unpacked mode on a compact cache: List = %+v", infos[0])
	}
	img = getImage(t, unpacked, ref)
	if got := contentKinds(img); got != "unpacked unpacked unpacked blob" {
		t.Fatalf("unpacked mode on a compact cache: layers served as %s", got)
	}
	checkImageAgainst(t, img, layers)
	checkVerifyCleanStore(t, unpacked)

	rep, err := compact.Prune(context.Background(), PruneOptions{})
	must(t, err)
	if len(rep.Evicted) != 2 || exists(unpacked.unpackedPath(layers[0].diffID())) || !exists(unpacked.unpackedPath(layers[2].diffID())) {
		t.Fatalf("compact prune evicted %v; want the copies of the gzip and multi-frame zstd layers only", rep.Evicted)
	}
	// The image opened before the eviction still reads its copies.
	checkImageAgainst(t, img, layers)
	img = getImage(t, compact, ref)
	if got := contentKinds(img); got != "gzip-seek zstd-frames unpacked blob" {
		t.Fatalf("after compact prune: layers served as %s", got)
	}
	checkImageAgainst(t, img, layers)
	checkVerifyCleanStore(t, compact)
	infos, err = compact.List()
	must(t, err)
	if n := infos[0].Layers[2].Note; !strings.Contains(n, "zstd frame") {
		t.Errorf("cache ls note of the single-frame zstd layer: %q", n)
	}
}

// TestMaxUnpackedEvictsLeastRecentlyUsed: a budget keeps the most
// recently used copies.
func TestMaxUnpackedEvictsLeastRecentlyUsed(t *testing.T) {
	all := contentLayers(t)
	layers := []*testLayer{all[0], all[1], all[2]}
	s, ref := pullOffline(t, "", ModeUnpacked, layers...)
	// Last use: layer 1 long ago, then 2, then 0.
	for i, age := range []time.Duration{time.Minute, time.Hour, 30 * time.Minute} {
		at := time.Now().Add(-age)
		must(t, os.Chtimes(s.unpackedPath(layers[i].diffID()), at, time.Time{}))
	}
	budget := int64(len(layers[0].tar)) + 1000
	dry, err := s.Prune(context.Background(), PruneOptions{EvictUnpacked: true, MaxUnpacked: budget, DryRun: true})
	must(t, err)
	rep, err := s.Prune(context.Background(), PruneOptions{EvictUnpacked: true, MaxUnpacked: budget})
	must(t, err)
	want := []string{
		filepath.Join(unpackedDir, "sha256", layers[1].diffID().Hex),
		filepath.Join(unpackedDir, "sha256", layers[2].diffID().Hex),
	}
	if strings.Join(rep.Evicted, " ") != strings.Join(sorted(want), " ") || strings.Join(dry.Evicted, " ") != strings.Join(rep.Evicted, " ") {
		t.Fatalf("evicted %v (dry run %v), want %v", rep.Evicted, dry.Evicted, want)
	}
	if !exists(s.unpackedPath(layers[0].diffID())) {
		t.Fatal("the most recently used copy was evicted")
	}
	// Unpacked mode rebuilds what it lacks, offline.
	img := getImage(t, s, ref)
	checkImageAgainst(t, img, layers)
	if got := contentKinds(img); got != "unpacked unpacked unpacked" {
		t.Errorf("after eviction in unpacked mode: %s", got)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestBadSeekIndexRebuiltOffline: in compact mode, a seek index that is
// damaged, from an older version, or gone is rebuilt from the blob with
// the registry gone, byte for byte as it was.
func TestBadSeekIndexRebuiltOffline(t *testing.T) {
	layers := contentLayers(t)[:2]
	for name, spoil := range map[string]func(p string){
		"flipped":   func(p string) { flipByte(t, p, seekHeaderSize+40) },
		"truncated": func(p string) { truncate(t, p, seekHeaderSize) },
		"removed":   func(p string) { must(t, os.Remove(p)) },
		"old version": func(p string) {
			b, _ := os.ReadFile(p)
			b[11]--
			must(t, os.WriteFile(p, b, 0o644))
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, ref := pullOffline(t, "", ModeCompact, layers...)
			for _, l := range layers {
				p := s.seekPath(l.digest())
				before, _ := os.ReadFile(p)
				spoil(p)
				img := getImage(t, s, ref)
				checkImageAgainst(t, img, layers)
				if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
					t.Errorf("rebuilt seek index of %s differs", l.digest())
				}
			}
		})
	}
}

// TestVerifyChecksSeekIndexes: Verify finds a seek index whose checksum
// fails, and one that is well-formed but through which the blob does not
// decode to the diffID; Repair removes them; Get rebuilds them offline.
func TestVerifyChecksSeekIndexes(t *testing.T) {
	layers := contentLayers(t)[:2]
	s, ref := pullOffline(t, "", ModeCompact, layers...)
	checkVerifyCleanStore(t, s)
	flipByte(t, s.seekPath(layers[0].digest()), seekHeaderSize+100)
	x, err := s.loadSeek(layers[1].digest(), layers[1].diffID())
	must(t, err)
	x.zs.cps[1].in += 3 // a span that starts mid-frame
	b, err := x.encode()
	must(t, err)
	must(t, os.WriteFile(s.seekPath(layers[1].digest()), b, 0o644))
	rep, err := s.Verify(context.Background(), VerifyOptions{Repair: true})
	must(t, err)
	got := map[string]bool{}
	for _, p := range rep.Problems {
		if p.Kind == ProblemSeek && p.Repaired {
			got[p.Digest] = true
		}
	}
	if !got[layers[0].digest().String()] || !got[layers[1].digest().String()] || rep.Seek != 2 {
		t.Fatalf("verify: %+v", rep)
	}
	img := getImage(t, s, ref)
	checkImageAgainst(t, img, layers)
	checkVerifyCleanStore(t, s)
}

// TestCompactDiskUse: in compact mode the store holds the blobs plus
// small indexes.
func TestCompactDiskUse(t *testing.T) {
	layers := contentLayers(t)
	layers = []*testLayer{layers[0], layers[1], layers[3]}
	s, ref := pullOffline(t, "", ModeCompact, layers...)
	img := getImage(t, s, ref)
	if _, err := img.Tree(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	var blobs int64
	for _, l := range layers {
		blobs += int64(len(l.blob))
	}
	u := s.Usage()
	if u.Unpacked != 0 || float64(u.Total()) > 1.1*float64(blobs) {
		t.Errorf("compact store uses %d bytes (%+v) for %d bytes of layer blobs", u.Total(), u, blobs)
	}
	infos, err := s.List()
	must(t, err)
	if d := infos[0].Disk; d.Total() != u.Total() || d.Seek == 0 || d.Trees == 0 {
		t.Errorf("List disk %+v, store %+v", d, u)
	}
}

// TestVerifyLongZstdFrame: a single-frame zstd layer far longer than
// random access allows keeps its copy, and Verify still checks its seek
// index (streaming the frame).
func TestVerifyLongZstdFrame(t *testing.T) {
	tarb := ti.Layer(ti.File("big", strings.Repeat("0123456789abcdef", 2<<20)), ti.File("small", "x")) // 32 MiB
	l := zstdLayer(t, tarb)
	s, ref := pullOffline(t, "", ModeCompact, l)
	img := getImage(t, s, ref)
	if got := contentKinds(img); got != "unpacked" {
		t.Errorf("a 32 MiB zstd frame served as %s", got)
	}
	checkVerifyCleanStore(t, s)
	x, err := s.loadSeek(l.digest(), l.diffID())
	must(t, err)
	if x.servable() || x.zs.numSpans() != 1 {
		t.Errorf("seek index of one 32 MiB frame: servable %v, %d spans", x.servable(), x.zs.numSpans())
	}
}
