package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/fsload"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// loadLayers is a random four-layer stack (whiteouts, opaque
// directories, hardlinks across layers, xattrs, devices) topped by a
// layer of binary files from 256 KiB to 4 MiB and a 2,000-entry
// directory, so that reads at random offsets span many requests.
func loadLayers(t *testing.T) [][]byte {
	layers := ti.Random(t, 21, 4, 300)
	r := rand.New(rand.NewPCG(21, 21))
	es := []ti.Entry{ti.Dir("blobs"), ti.Dir("wide")}
	for i := range 12 {
		b := make([]byte, 256<<10+r.IntN(4<<20))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		es = append(es, ti.File(fmt.Sprintf("blobs/b%02d", i), string(b), ti.Xattr("user.n", []byte(fmt.Sprint(i)))))
	}
	for i := range 2000 {
		es = append(es, ti.File(fmt.Sprintf("wide/f%05d", i), fmt.Sprint(i)))
	}
	return append(layers, ti.Layer(es...))
}

// raceLog makes a race-enabled ocifs (and the mount server it starts,
// whose stderr goes to /dev/null once it is ready) write race reports to
// files in a fresh directory; checkRaceLog fails the test if there are any.
func raceLog(t *testing.T) (env []string, check func()) {
	dir := t.TempDir()
	env = []string{"GORACE=log_path=" + filepath.Join(dir, "race")}
	return env, func() {
		t.Helper()
		logs, _ := filepath.Glob(filepath.Join(dir, "race.*"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Errorf("race report from ocifs (%s):\n%s", filepath.Base(l), b)
		}
	}
}

// TestMountUnderLoad mounts an image with the real binary (built with
// -race under `go test -race`) and runs 16 readers doing random lookups
// (existing and missing names), lstats, readlinks, xattr reads, readdirs
// and reads at random offsets (a quarter with O_DIRECT, a quarter after
// dropping the file's pages), plus a walker listing the whole tree, for
// OCIFS_TEST_LOAD_DURATION (default 30 s, 3 s with -short). Every answer
// is checked against the merged tree read from the cache. The server
// must survive, report no race, unmount and exit.
func TestMountUnderLoad(t *testing.T) {
	requireFUSEMount(t)
	d := fsload.DurationFromEnv(30 * time.Second)
	if testing.Short() {
		d = 3 * time.Second
	}
	reg := testregistry.Start(t)
	ref := reg.Repo("load") + ":v1"
	ti.Push(t, ti.Image(t, loadLayers(t), ti.WithCompression(ti.Gzip, ti.Zstd, ti.Uncompressed, ti.Gzip, ti.Zstd)), ref)
	env, checkRace := raceLog(t)
	dir := mountDir(t)
	mustOcifs(t, env, "mount", ref, dir)
	pid := serverPid(t, dir)
	tree, img := mergedTree(t, ref)
	exp := fsload.NewExpect(tree, img)
	if paths, dirs, files, links := exp.Counts(); paths < 2500 || dirs < 20 || files < 2200 || links < 20 {
		t.Fatalf("fixture too small: %d paths, %d dirs, %d files, %d links", paths, dirs, files, links)
	}
	res := fsload.Run(context.Background(), fsload.Config{
		Root: dir, Readers: 16, Walkers: 1, Duration: d, Seed: 1, Direct: true,
	}, exp)
	t.Logf("ocifs mount (race detector: %v): %s", raceEnabled && os.Getenv("OCIFS_TEST_BINARY_RACE") != "0", res)
	if err := res.Err(); err != nil {
		t.Error(err)
	}
	if len(res.Stuck) > 0 {
		t.Fatal("the mount hangs")
	}
	if res.Walks == 0 || res.Ops["read"] == 0 || res.Ops["xattr"] == 0 {
		t.Errorf("the load did too little: %v", res.Ops)
	}
	if !alive(pid) {
		t.Fatal("the mount server died under load")
	}
	mustOcifs(t, nil, "umount", dir)
	if err := waitExit(pid, 10*time.Second); err != nil {
		t.Error(err)
	}
	checkRace()
}
