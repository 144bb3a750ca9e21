package builder

import (
	"errors"
	"testing"

	"github.com/ocifs/ocifs/overlay"
)

// rootfsTree is a tree of about 40 MiB in 2000 files.
func rootfsTree(t testing.TB) *overlay.Tree {
	es := []overlay.Entry{}
	for i := range 2000 {
		es = append(es, ent("usr/lib/"+name(i, 10), overlay.TypeRegular, size(int64(i*21))))
	}
	return treeOf(t, es...)
}

func TestHeadroom(t *testing.T) {
	tr := rootfsTree(t)
	none, err := Plan(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if none.Blocks != none.Need {
		t.Errorf("no headroom: %d blocks for %d needed", none.Blocks, none.Need)
	}
	for _, pct := range []float64{10, 50, 200} {
		l, err := Plan(tr, Options{Headroom: pct})
		if err != nil {
			t.Fatal(err)
		}
		free := float64(l.Blocks - l.Need)
		if want := float64(l.Need) * pct / 100; free < want || free > want+float64(l.BlocksPerGroup)/8 {
			t.Errorf("headroom %g%%: %v free blocks of %d, want about %v", pct, free, l.Blocks, want)
		}
	}
	l, err := Plan(tr, Options{Free: 1 << 30, Headroom: 10})
	if err != nil {
		t.Fatal(err)
	}
	if free := l.Blocks - l.Need; free < 1<<30/blockSize || free > 1<<30/blockSize+256 {
		t.Errorf("--free 1G: %d free blocks, want %d (Free replaces Headroom)", free, 1<<30/blockSize)
	}
}

func TestJournal(t *testing.T) {
	for blocks, want := range map[uint64]uint64{
		0: 1024, 64 * 1024: 1024, 256 * 1024: 4096, 1 << 20: 16384, 1 << 30: 16384,
	} {
		if got := journalFor(blocks, Options{}); got != want {
			t.Errorf("%d blocks: journal %d, want %d", blocks, got, want)
		}
	}
	if got := journalFor(1<<20, Options{NoJournal: true}); got != 0 {
		t.Errorf("NoJournal: journal %d", got)
	}
	// A tiny image still gets room for mke2fs to accept its journal:
	// at most half the free blocks.
	l, err := Plan(treeOf(t, ent("a", overlay.TypeRegular, size(10))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Blocks < l.Overhead+2*l.Journal || l.Blocks < 2048 {
		t.Errorf("tiny image: %d blocks, %d overhead, journal %d", l.Blocks, l.Overhead, l.Journal)
	}
}

func TestFixedSize(t *testing.T) {
	tr := rootfsTree(t)
	l, err := Plan(tr, Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if l.Blocks != 1<<30/blockSize || l.FileSize != 1<<30 {
		t.Errorf("--size 1G: %d blocks, file %d", l.Blocks, l.FileSize)
	}
	// Far too small for the metadata and journal: refused before mkfs.
	_, err = Plan(tr, Options{Size: 4 << 20})
	var small *TooSmallError
	if !errors.As(err, &small) || small.Have != 4<<20 || small.Need < 40<<20 {
		t.Errorf("--size 4M: %v, want TooSmallError needing over 40 MiB", err)
	}
}

func TestOptionErrors(t *testing.T) {
	tr := rootfsTree(t)
	for _, o := range []Options{
		{Size: -1}, {Free: -1}, {Headroom: -5}, {Label: "seventeen bytes!!"},
		{UUID: "not-a-uuid"}, {Size: 1 << 30, Free: 1 << 20},
	} {
		if _, err := Plan(tr, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := Plan(tr, Options{UUID: "0123ABCD-0000-4000-8000-000000000000", Label: "sixteen bytes!!!"}); err != nil {
		t.Errorf("valid UUID and 16-byte label: %v", err)
	}
}

func TestParseMkfsVersion(t *testing.T) {
	for banner, want := range map[string]string{
		"mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n": "1.47.0",
		"mke2fs 1.43 (17-May-2016)\n":                                         "1.43",
		"mke2fs 2.0.1 (1-Jan-2030)\n":                                         "2.0.1",
	} {
		if got, err := parseMkfsVersion("mkfs", banner); err != nil || got != want {
			t.Errorf("%q: %q, %v", banner, got, err)
		}
	}
	for _, banner := range []string{"mke2fs 1.42.9 (28-Dec-2013)\n", "BusyBox v1.36.1 multi-call binary.\n", ""} {
		if _, err := parseMkfsVersion("mkfs", banner); !errors.Is(err, ErrMissingTool) {
			t.Errorf("%q: %v, want ErrMissingTool", banner, err)
		}
	}
}

func TestDeriveUUID(t *testing.T) {
	a, b := deriveUUID("sha256:abc", "uuid"), deriveUUID("sha256:abc", "hash_seed")
	if a == b || a != deriveUUID("sha256:abc", "uuid") || a == deriveUUID("sha256:abd", "uuid") {
		t.Errorf("derived UUIDs not distinct per purpose and stable per seed: %s %s", a, b)
	}
	if !uuidRE.MatchString(a) || a[14] != '8' {
		t.Errorf("%s is not a version 8 UUID", a)
	}
}
