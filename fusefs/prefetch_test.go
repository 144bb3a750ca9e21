package fusefs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocifs/ocifs/overlay"
)

// prefetchImage has a directory of small files of distinct content, one
// file too big to prefetch, a sparse file and an empty one.
func prefetchImage(files int) (*memImage, map[string][]byte) {
	want := map[string][]byte{}
	es := []fentry{dir("d")}
	for i := 0; i < files; i++ {
		name := fmt.Sprintf("d/f%03d", i)
		want[name] = randomBytes(uint64(i), 1+i*997%70000)
		es = append(es, fileBytes(name, want[name]))
	}
	want["d/zbig"] = randomBytes(99, prefetchMaxFile+1)
	want["d/zempty"] = nil
	es = append(es, fileBytes("d/zbig", want["d/zbig"]), file("d/zempty", ""),
		fileBytes("d/zsparse", make([]byte, 8192), sparse([2]int64{4096, 4096})))
	return new(memImage).addLayer(es...), want
}

// TestPrefetch lists a directory on a prefetching mount, waits for the
// pusher, then reads every file: the small ones must come from the page
// cache (no READ) with the right bytes, the others through READ.
func TestPrefetch(t *testing.T) {
	const files = 300
	m, want := prefetchImage(files)
	tree := m.merge(t)
	for _, c := range []struct {
		name    string
		content func(t *testing.T) overlay.LayerReader
	}{
		{"memory", func(*testing.T) overlay.LayerReader { return m }},
		{"file", func(t *testing.T) overlay.LayerReader { return &splicingLayerFile{*fileBacked(t, m)} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, mnt := mountTree(t, tree, c.content(t), Options{Prefetch: true})
			if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
				t.Fatal(err)
			}
			waitPrefetched(t, srv, files)
			before := srv.Stats()
			for name, b := range want {
				got, err := os.ReadFile(filepath.Join(mnt, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, b) {
					t.Errorf("%s: read %d bytes, want %d bytes of the image", name, len(got), len(b))
				}
			}
			s := srv.Stats().Sub(before)
			// zbig takes ceil(size/128 KiB) reads; nothing else any.
			if maxReads := uint64(prefetchMaxFile/(128<<10) + 2); s.Read > maxReads {
				t.Errorf("reading prefetched files sent %d READs, want at most %d (the big file's): %v", s.Read, maxReads, s)
			}
			if got := srv.Stats().Prefetched; got != files {
				t.Errorf("prefetched %d files, want %d (not the big, empty or sparse ones)", got, files)
			}
		})
	}
}

// TestPrefetchOff checks that a mount without Options.Prefetch pushes
// nothing.
func TestPrefetchOff(t *testing.T) {
	m, _ := prefetchImage(10)
	srv, mnt := mountTree(t, m.merge(t), m, Options{})
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if s := srv.Stats(); s.Prefetched != 0 {
		t.Errorf("prefetched %d files without Options.Prefetch", s.Prefetched)
	}
}

func waitPrefetched(t *testing.T, srv *Server, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Prefetched < n {
		if time.Now().After(deadline) {
			t.Fatalf("prefetched %v after 10 s, want %d files", srv.Stats(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
