package integration

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/internal/faultproxy"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// Faults between `ocifs pull` and the real registry, injected by
// internal/faultproxy: wrong bytes, dropped and stalled connections,
// server errors, a server without Range support, SIGKILL mid-blob, and
// concurrent processes.

// closedAddr is a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// faultImage is pushed to the real registry and pulled through a fault
// proxy: its first layer is a gzip blob of about 1 MiB (incompressible
// content), so that faults can hit its middle.
type faultImage struct {
	ref   string // through the proxy
	proxy *faultproxy.Proxy
	img   v1.Image
	big   v1.Hash // the 1 MiB layer's digest
	size  int64   // its size
}

// more layers, if given, replace the small second one; they alternate
// zstd and uncompressed.
func newFaultImage(t *testing.T, name string, more ...[]byte) *faultImage {
	t.Helper()
	reg := testregistry.Start(t)
	r := rand.New(rand.NewPCG(7, uint64(len(name))))
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	if len(more) == 0 {
		more = [][]byte{ti.Layer(ti.File("etc/hostname", name+"\n"), ti.Hardlink("etc/hostname2", "etc/hostname"))}
	}
	comps := []ti.Compression{ti.Gzip}
	for i := range more {
		comps = append(comps, []ti.Compression{ti.Zstd, ti.Uncompressed}[i%2])
	}
	layers := append([][]byte{ti.Layer(ti.Dir("data"), ti.File("data/random", string(content)))}, more...)
	img := ti.Image(t, layers, ti.WithCompression(comps...), ti.WithPlatform("linux/amd64"))
	ti.Push(t, img, reg.Repo(name)+":v1")
	p := faultproxy.Start(t, reg.Addr)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	return &faultImage{ref: p.Addr + "/" + reg.Prefix() + "/" + name + ":v1", proxy: p, img: img, big: d, size: size}
}

// blobGets returns the proxy's log of GETs of blob d.
func (f *faultImage) blobGets(d v1.Hash) []faultproxy.Request {
	var out []faultproxy.Request
	for _, r := range f.proxy.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "/blobs/"+d.String()) {
			out = append(out, r)
		}
	}
	return out
}

func blobPath(t testing.TB, d v1.Hash) string {
	return filepath.Join(cacheDir(t), "blobs", "sha256", d.Hex)
}

func checkNoTempFiles(t testing.TB) {
	t.Helper()
	if ents, _ := os.ReadDir(filepath.Join(cacheDir(t), "ocifs", "tmp")); len(ents) > 0 {
		t.Errorf("temp files left: %v", ents)
	}
}

func TestPullWrongBytesFromProxy(t *testing.T) {
	f := newFaultImage(t, "wrong")
	f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Corrupt, After: f.size / 2})
	_, stderr, code := runOcifs(t, nil, "pull", f.ref)
	if code != 3 || !strings.Contains(stderr, f.big.String()) || !strings.Contains(stderr, "hashes to") {
		t.Fatalf("pull through a corrupting proxy: exit %d, stderr %q; want 3 naming %s", code, stderr, f.big)
	}
	if _, err := os.Stat(blobPath(t, f.big)); err == nil {
		t.Fatal("the corrupt blob exists under its final name")
	}
	checkNoTempFiles(t)
	f.proxy.Reset()
	mustOcifs(t, nil, "pull", f.ref)
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullResumesDroppedBlob: the real registry answers the resumed
// request with 206 from the byte where the connection broke.
func TestPullResumesDroppedBlob(t *testing.T) {
	f := newFaultImage(t, "resume")
	f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Drop, After: f.size / 3, Times: 1})
	out := mustOcifs(t, nil, "pull", "--verbose", f.ref)
	gets := f.blobGets(f.big)
	if len(gets) != 2 || gets[0].Sent != f.size/3 {
		t.Fatalf("blob requests: %+v", gets)
	}
	if start, ok := faultproxy.ParseRange(gets[1].Range); !ok || start != f.size/3 || gets[1].Status != 206 || gets[1].Sent != f.size-f.size/3 {
		t.Fatalf("resumed request %+v, want Range from %d answered 206 with the rest", gets[1], f.size/3)
	}
	if !strings.Contains(out, "2 fetched") {
		t.Errorf("pull --verbose: %q", out)
	}
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullResumesWithoutRange: a server that ignores Range sends the whole
// blob again; the pull skips what it had and still verifies.
func TestPullResumesWithoutRange(t *testing.T) {
	f := newFaultImage(t, "norange")
	f.proxy.Add(
		faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Drop, After: f.size / 2, Times: 1},
		faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.IgnoreRange},
	)
	mustOcifs(t, nil, "pull", f.ref)
	gets := f.blobGets(f.big)
	if len(gets) != 2 || gets[1].Range == "" || gets[1].Status != 200 || gets[1].Sent != f.size {
		t.Fatalf("blob requests: %+v", gets)
	}
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullRetriesServerErrors: 500, 503 and 429 answers to manifests,
// config and blobs are retried with backoff.
func TestPullRetriesServerErrors(t *testing.T) {
	f := newFaultImage(t, "errors")
	cfg, _ := f.img.ConfigName()
	f.proxy.Add(
		faultproxy.Rule{Path: "/manifests/", Fault: faultproxy.Status, Status: 429, RetryAfter: "1", Times: 1},
		faultproxy.Rule{Path: cfg.String(), Fault: faultproxy.Status, Status: 503, Times: 1},
		faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Status, Status: 500, Times: 2},
	)
	mustOcifs(t, nil, "pull", f.ref)
	if n := f.proxy.Applied(faultproxy.Status); n != 4 {
		t.Errorf("%d error answers given, want 4", n)
	}
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullStallTimesOut: a connection that goes silent mid-blob is
// abandoned after --timeout and the download resumed.
func TestPullStallTimesOut(t *testing.T) {
	f := newFaultImage(t, "stall")
	f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Stall, After: f.size / 2, Times: 1})
	start := time.Now()
	mustOcifs(t, nil, "pull", "--timeout", "1s", f.ref)
	if d := time.Since(start); d < time.Second {
		t.Errorf("pull took %v, less than the stall timeout", d)
	}
	gets := f.blobGets(f.big)
	if len(gets) != 2 || gets[0].Fault != faultproxy.Stall {
		t.Fatalf("blob requests: %+v", gets)
	}
	if start, ok := faultproxy.ParseRange(gets[1].Range); !ok || start != f.size/2 {
		t.Errorf("resumed request %+v, want Range from %d", gets[1], f.size/2)
	}
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullGivesUp: a blob that always fails ends the pull after --retries
// with one clear line naming it, and leaves nothing behind.
func TestPullGivesUp(t *testing.T) {
	f := newFaultImage(t, "giveup")
	f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Status, Status: 500})
	start := time.Now()
	_, stderr, code := runOcifs(t, nil, "pull", "--retries", "2", f.ref)
	if code != 1 || !strings.HasPrefix(stderr, "ocifs: ") || !strings.Contains(stderr, f.big.String()) ||
		!strings.Contains(stderr, "giving up after 3 attempts") || !strings.Contains(stderr, "500") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if n := len(f.blobGets(f.big)); n != 3 {
		t.Errorf("%d requests of the blob, want 3", n)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("giving up took %v", d)
	}
	if _, err := os.Stat(blobPath(t, f.big)); err == nil {
		t.Error("blob stored")
	}
	checkNoTempFiles(t)
	if ls := cacheLs(t); len(ls) != 0 {
		t.Errorf("failed pull recorded: %+v", ls)
	}
}

// TestPullKilledMidBlobThenRerun kills `ocifs pull` with SIGKILL while a
// blob is half downloaded, then pulls again.
func TestPullKilledMidBlobThenRerun(t *testing.T) {
	f := newFaultImage(t, "killed")
	stalled := make(chan string, 1)
	f.proxy.Add(faultproxy.Rule{Path: f.big.String(), Fault: faultproxy.Stall, After: f.size / 2, Times: 1, Signal: stalled})
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, nil, "pull", f.ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("ocifs pull never reached the middle of the blob")
	}
	time.Sleep(200 * time.Millisecond) // let it write what it received
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(blobPath(t, f.big)); err == nil {
		t.Fatal("a partial blob is under its final name")
	}
	f.proxy.Reset()
	mustOcifs(t, nil, "pull", f.ref)
	mustOcifs(t, nil, "cache", "verify")
}

// TestConcurrentPullProcesses runs `ocifs pull` of the same image twice
// and of two images overlapping it, plus `cache verify` and `cache
// prune`, as separate processes on one cache at once, through a proxy
// that slows blobs down so that they overlap.
func TestConcurrentPullProcesses(t *testing.T) {
	reg := testregistry.Start(t)
	base := ti.Layer(ti.Dir("usr"), ti.File("usr/base", strings.Repeat("base", 50000)))
	imgs := map[string][][]byte{
		"a": {base, ti.Layer(ti.File("a", "a"))},
		"b": {base, ti.Layer(ti.File("b", "b"))},
		"c": {base, ti.Layer(ti.File("a", "a")), ti.Layer(ti.File("c", "c"))},
	}
	for name, layers := range imgs {
		ti.Push(t, ti.Image(t, layers, ti.WithPlatform("linux/amd64")), reg.Repo(name)+":v1")
	}
	proxy := faultproxy.Start(t, reg.Addr)
	proxy.Add(faultproxy.Rule{Path: "/blobs/", Fault: faultproxy.Delay, Wait: 150 * time.Millisecond})
	ref := func(name string) string { return proxy.Addr + "/" + reg.Prefix() + "/" + name + ":v1" }
	runs := [][]string{
		{"pull", ref("a")}, {"pull", ref("a")}, {"pull", ref("b")}, {"pull", ref("c")},
		{"cache", "verify"}, {"cache", "prune"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	var wg sync.WaitGroup
	outs := make([]string, len(runs))
	errs := make([]error, len(runs))
	for i, args := range runs {
		wg.Go(func() {
			b, err := ocifsCommand(ctx, t, nil, args...).CombinedOutput()
			outs[i], errs[i] = string(b), err
		})
	}
	wg.Wait()
	for i := range runs {
		if errs[i] != nil {
			t.Errorf("ocifs %s: %v\n%s", strings.Join(runs[i], " "), errs[i], outs[i])
		}
	}
	mustOcifs(t, nil, "cache", "verify")
	ls := cacheLs(t)
	if len(ls) != 3 {
		t.Fatalf("cache ls: %d images, want 3: %+v", len(ls), ls)
	}
	for _, e := range ls {
		if e.Problem != "" {
			t.Errorf("%s: %s", e.Ref, e.Problem)
		}
	}
	checkNoTempFiles(t)
}

// TestBadIndexAndUnpackedRebuiltOffline: a truncated layer index and a
// truncated unpacked copy are found when the image is next used and
// rebuilt from the blobs without the registry (the proxy is gone); an
// unpacked copy with a flipped byte is found by `cache verify`, removed
// by `--repair` and rebuilt the same way.
func TestBadIndexAndUnpackedRebuiltOffline(t *testing.T) {
	f := newFaultImage(t, "rebuild")
	mustOcifs(t, nil, "pull", f.ref)
	want := indexFiles(t, cacheDir(t))
	f.proxy.Close()
	ls := cacheLs(t)
	if len(ls) != 1 || len(ls[0].Layers) != 2 {
		t.Fatalf("cache ls: %+v", ls)
	}
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	unpacked := filepath.Join(cacheDir(t), "ocifs", "unpacked", "sha256", hexOf(ls[0].Layers[0].DiffID))
	index := filepath.Join(cacheDir(t), "ocifs", "index", "sha256", hexOf(ls[0].Layers[1].DiffID))
	for _, p := range []string{unpacked, index} {
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
	}
	mustOcifs(t, nil, "inspect", f.ref, "/data/random")
	mustOcifs(t, nil, "cache", "verify")

	b, err := os.ReadFile(unpacked)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(unpacked, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := runOcifs(t, nil, "cache", "verify", "--repair")
	if code != 1 || !strings.Contains(stdout, "bad unpacked "+ls[0].Layers[0].DiffID) || !strings.Contains(stdout, "(removed)") {
		t.Fatalf("cache verify --repair: exit %d\n%s", code, stdout)
	}
	mustOcifs(t, nil, "inspect", f.ref, "/data/random")
	mustOcifs(t, nil, "cache", "verify")
	got := indexFiles(t, cacheDir(t))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("rebuilt index %s differs", k)
		}
	}
}
