package cache

import (
	"context"
	"encoding/binary"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pulledStore pulls threeLayers from a registry that is closed afterwards,
// so that anything the test does next must work offline.
func pulledStore(t *testing.T, mode Mode) (*Store, string, []*testLayer) {
	t.Helper()
	host, srv := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/maint:v1"
	push(t, ref, img)
	s := openStoreMode(t, "", mode)
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	got.Close()
	srv.Close()
	return s, ref, layers
}

func TestVerifyFindsCorruption(t *testing.T) {
	s, _, layers := pulledStore(t, ModeUnpacked)
	rep, err := s.Verify(context.Background(), VerifyOptions{})
	must(t, err)
	if len(rep.Problems) != 0 || rep.Blobs != 5 || rep.Indexes != 3 || rep.Unpacked != 2 || rep.Seek != 2 {
		t.Fatalf("clean store: %+v", rep)
	}
	flipByte(t, s.blobPath(layers[0].digest()), 10)
	flipByte(t, s.unpackedPath(layers[1].diffID()), 700)
	truncate(t, s.indexPath(layers[2].diffID()), 50)
	rep, err = s.Verify(context.Background(), VerifyOptions{})
	must(t, err)
	got := map[string]string{}
	for _, p := range rep.Problems {
		got[p.Kind] = p.Digest
	}
	want := map[string]string{
		ProblemBlob:     layers[0].digest().String(),
		ProblemUnpacked: layers[1].diffID().String(),
		ProblemIndex:    layers[2].diffID().String(),
		ProblemMissing:  got[ProblemMissing], // the truncated index makes the image incomplete
	}
	if !reflect.DeepEqual(got, want) || got[ProblemMissing] == "" {
		t.Fatalf("problems = %+v\nwant kinds and digests %v", rep.Problems, want)
	}
	rep, err = s.Verify(context.Background(), VerifyOptions{Repair: true})
	must(t, err)
	for _, p := range rep.Problems {
		if p.Kind != ProblemMissing && (!p.Repaired || exists(filepath.Join(s.Dir(), p.Path))) {
			t.Errorf("not repaired: %+v", p)
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x55
	_, err = f.WriteAt(b, off)
	must(t, err)
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	must(t, os.Truncate(path, size))
}

func TestBadIndexesAreRebuiltOffline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
	}{
		{"truncated", func(t *testing.T, p string) { truncate(t, p, 100) }},
		{"flipped", func(t *testing.T, p string) { flipByte(t, p, indexHeaderSize+3) }},
		{"old version", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			binary.BigEndian.PutUint32(b[8:], indexVersion-1)
			must(t, os.WriteFile(p, b, 0o644))
		}},
		{"removed", func(t *testing.T, p string) { must(t, os.Remove(p)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ref, layers := pulledStore(t, "")
			img, err := s.Get(context.Background(), ref, PullOptions{})
			must(t, err)
			defer img.Close()
			p := s.indexPath(layers[1].diffID())
			before, _ := os.ReadFile(p)
			tc.spoil(t, p)
			checkImageAgainst(t, img, layers) // Indexes rebuilds, offline
			after, _ := os.ReadFile(p)
			if string(after) != string(before) {
				t.Error("the rebuilt index differs from the original")
			}
		})
	}
}

// TestGetRepairsMissingPiecesOffline: a layer whose index and unpacked
// copy are gone is rebuilt from its blob by Get, with the registry gone.
func TestGetRepairsMissingPiecesOffline(t *testing.T) {
	s, ref, layers := pulledStore(t, ModeUnpacked)
	must(t, os.Remove(s.indexPath(layers[0].diffID())))
	must(t, os.Remove(s.unpackedPath(layers[0].diffID())))
	img, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer img.Close()
	checkImageAgainst(t, img, layers)
	// With a blob gone too, Get must pull, and the registry is gone.
	must(t, os.Remove(s.indexPath(layers[1].diffID())))
	must(t, os.Remove(s.blobPath(layers[1].digest())))
	if _, err := s.Get(context.Background(), ref, PullOptions{}); !isErr(err, ErrUnreachable) {
		t.Fatalf("Get with a blob missing and no registry: err = %v, want ErrUnreachable", err)
	}
}

func TestPruneKeepsWhatIsReferenced(t *testing.T) {
	host, _ := startRegistry(t)
	img, layers := threeLayers(t)
	extra := gzipLayer(t, ti.Layer(ti.File("only-in-b", "b")))
	imgB := imageOf(t, "linux/amd64", layers[0], extra)
	push(t, host+"/test/a:v1", img)
	push(t, host+"/test/b:v1", imgB)
	s := openStoreMode(t, "", ModeCompact)
	for _, r := range []string{host + "/test/a:v1", host + "/test/b:v1"} {
		got, err := s.Pull(context.Background(), r, PullOptions{})
		must(t, err)
		got.Close()
	}
	junk := filepath.Join(s.Dir(), blobsDir, "sha256", strings.Repeat("0", 64))
	must(t, os.WriteFile(junk, []byte("unreferenced"), 0o644))
	rep, err := s.Prune(context.Background(), PruneOptions{})
	must(t, err)
	if len(rep.Removed) != 1 || !strings.HasSuffix(rep.Removed[0], strings.Repeat("0", 64)) {
		t.Fatalf("prune removed %v, want only the junk blob", rep.Removed)
	}
	dry, err := s.Prune(context.Background(), PruneOptions{Untag: []string{host + "/test/b:v1"}, DryRun: true})
	must(t, err)
	rep, err = s.Prune(context.Background(), PruneOptions{Untag: []string{host + "/test/b:v1"}})
	must(t, err)
	if !reflect.DeepEqual(dry.Removed, rep.Removed) {
		t.Errorf("dry run said %v, prune removed %v", dry.Removed, rep.Removed)
	}
	// b's manifest, config, its own layer blob, index and seek index (no
	// unpacked copy in compact mode).
	if len(rep.Removed) != 5 || !exists(s.blobPath(layers[0].digest())) || exists(s.blobPath(extra.digest())) {
		t.Errorf("untag b: removed %v", rep.Removed)
	}
	got, err := s.Get(context.Background(), host+"/test/a:v1", PullOptions{})
	must(t, err)
	checkImageAgainst(t, got, layers)
	got.Close()
	if v, err := s.Verify(context.Background(), VerifyOptions{}); err != nil || len(v.Problems) != 0 {
		t.Errorf("verify after prune: %v %+v", err, v)
	}
	rep, err = s.Prune(context.Background(), PruneOptions{All: true})
	must(t, err)
	infos, _ := s.List()
	left, _ := filepath.Glob(filepath.Join(s.Dir(), "blobs", "sha256", "*"))
	if len(infos) != 0 || len(left) != 0 || len(rep.Untagged) != 1 {
		t.Errorf("prune --all left %d images, %d blobs (untagged %v)", len(infos), len(left), rep.Untagged)
	}
}

func TestList(t *testing.T) {
	s, ref, layers := pulledStore(t, ModeUnpacked)
	infos, err := s.List()
	must(t, err)
	if len(infos) != 1 || infos[0].Ref != ref || infos[0].Platform != "linux/amd64" || infos[0].Problem != "" || len(infos[0].Layers) != 3 {
		t.Fatalf("List = %+v", infos)
	}
	for i, l := range infos[0].Layers {
		wantUnpacked := int64(len(layers[i].tar))
		if i == 2 {
			wantUnpacked = 0 // served from the blob
		}
		if l.Size != int64(len(layers[i].blob)) || l.UnpackedSize != wantUnpacked || l.IndexSize == 0 || l.Entries == 0 {
			t.Errorf("layer %d: %+v", i, l)
		}
	}
	must(t, os.Remove(s.blobPath(layers[1].digest())))
	infos, _ = s.List()
	if !strings.Contains(infos[0].Problem, layers[1].digest().String()) {
		t.Errorf("problem = %q, want it to name the missing blob", infos[0].Problem)
	}
}

// TestPullRefetchesCorruptStoredBlob: a stored blob that no longer matches
// its digest (and whose index is gone, so the pull rescans it) is fetched
// again rather than failing the pull.
func TestPullRefetchesCorruptStoredBlob(t *testing.T) {
	host, _ := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/refetch:v1"
	push(t, ref, img)
	s := openStore(t, "")
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	got.Close()
	flipByte(t, s.blobPath(layers[0].digest()), 20)
	must(t, os.Remove(s.indexPath(layers[0].diffID())))
	got, err = s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	if got.Stats.LayersFetched != 1 {
		t.Errorf("stats = %+v, want the corrupt layer fetched again", got.Stats)
	}
	checkImageAgainst(t, got, layers)
	if rep, _ := s.Verify(context.Background(), VerifyOptions{}); len(rep.Problems) != 0 {
		t.Errorf("verify: %+v", rep.Problems)
	}
}

// TestBadUnpackedCopiesAreRebuiltOffline: an unpacked copy cut short is
// found by Get (its size disagrees with the index) and rewritten from the
// blob; one with a flipped byte is found by Verify, removed by Repair and
// rewritten by the next Get; all with the registry gone.
func TestBadUnpackedCopiesAreRebuiltOffline(t *testing.T) {
	s, ref, layers := pulledStore(t, ModeUnpacked)
	p := s.unpackedPath(layers[0].diffID())
	truncate(t, p, 1000)
	img, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	checkImageAgainst(t, img, layers)
	img.Close()

	flipByte(t, p, 600)
	rep, err := s.Verify(context.Background(), VerifyOptions{Repair: true})
	must(t, err)
	if len(rep.Problems) == 0 || rep.Problems[0].Kind != ProblemUnpacked || rep.Problems[0].Digest != layers[0].diffID().String() || !rep.Problems[0].Repaired {
		t.Fatalf("Verify: %+v", rep.Problems)
	}
	img, err = s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer img.Close()
	checkImageAgainst(t, img, layers)
	checkVerifyClean(t, s)
}
