package cache

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/faultproxy"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

// Registry faults, injected by internal/faultproxy in front of the
// in-process registry: retries with backoff, resumption with Range, stall
// timeouts. The integration tests do the same against the real registry.

// fastNetwork retries quickly, so that fault tests take milliseconds. Its
// stall timeout is long enough that a pull slowed by a loaded machine
// (disk writes throttled, CPU taken by parallel tests) never looks
// stalled, which would add a request to the counts the tests check.
var fastNetwork = Network{Attempts: 4, StallTimeout: 5 * time.Second, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

// stallNetwork is fastNetwork with a stall timeout short enough to wait
// for twice in a test.
var stallNetwork = Network{Attempts: 4, StallTimeout: time.Second, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func openFastStore(t testing.TB, dir string) *Store {
	return openStoreWith(t, dir, fastNetwork)
}

func openStoreWith(t testing.TB, dir string, n Network) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, Options{Network: n})
	must(t, err)
	return s
}

// startProxiedRegistry is the in-process registry behind a fault proxy;
// it returns the proxy's host:port.
func startProxiedRegistry(t *testing.T) (string, *faultproxy.Proxy) {
	t.Helper()
	host, _ := startRegistry(t)
	p := faultproxy.Start(t, host)
	return p.Addr, p
}

// bigImage has one gzip layer of 1 MiB of incompressible content, so that
// its blob is about 1 MiB, and a small one.
func bigImage(t *testing.T) (string, *faultproxy.Proxy, []*testLayer) {
	host, p := startProxiedRegistry(t)
	r := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	layers := []*testLayer{
		gzipLayer(t, ti.Layer(ti.File("big", string(content)))),
		plainLayer(ti.Layer(ti.File("small", "small"))),
	}
	ref := host + "/test/big:v1"
	push(t, ref, imageOf(t, "linux/amd64", layers...))
	return ref, p, layers
}

// blobRequests returns the proxy's log of GETs of the blob.
func blobRequests(p *faultproxy.Proxy, l *testLayer) []faultproxy.Request {
	var out []faultproxy.Request
	for _, r := range p.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, l.digest().String()) {
			out = append(out, r)
		}
	}
	return out
}

func pullFast(t *testing.T, ref string) (*Store, *Image) {
	t.Helper()
	s := openFastStore(t, "")
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	t.Cleanup(func() { img.Close() })
	return s, img
}

// TestPullResumesWithRange: a connection dropped mid-blob is resumed from
// the byte where it broke, and the resumed blob still checks out end to
// end (hash state carried across attempts).
func TestPullResumesWithRange(t *testing.T) {
	ref, p, layers := bigImage(t)
	size := int64(len(layers[0].blob))
	p.Add(faultproxy.Rule{Path: layers[0].digest().String(), Fault: faultproxy.Drop, After: size / 3, Times: 1})
	s, img := pullFast(t, ref)
	checkImageAgainst(t, img, layers)
	reqs := blobRequests(p, layers[0])
	if len(reqs) != 2 || reqs[0].Range != "" || reqs[0].Sent != size/3 {
		t.Fatalf("blob requests: %+v", reqs)
	}
	if start, ok := faultproxy.ParseRange(reqs[1].Range); !ok || start != size/3 || reqs[1].Status != 206 || reqs[1].Sent != size-size/3 {
		t.Fatalf("resumed request: %+v, want Range from %d answered 206", reqs[1], size/3)
	}
	if img.Stats.BytesFetched != size+int64(len(layers[1].blob)) {
		t.Errorf("fetched %d bytes, want each blob once (%d)", img.Stats.BytesFetched, size+int64(len(layers[1].blob)))
	}
	checkVerifyClean(t, s)
}

// TestPullResumesWithoutRangeSupport: a registry that ignores Range
// answers 200 with the whole blob; the bytes already delivered are
// skipped, not hashed twice.
func TestPullResumesWithoutRangeSupport(t *testing.T) {
	ref, p, layers := bigImage(t)
	size := int64(len(layers[0].blob))
	d := layers[0].digest().String()
	p.Add(
		faultproxy.Rule{Path: d, Fault: faultproxy.Drop, After: size / 2, Times: 1},
		faultproxy.Rule{Path: d, Fault: faultproxy.IgnoreRange},
	)
	s, img := pullFast(t, ref)
	checkImageAgainst(t, img, layers)
	reqs := blobRequests(p, layers[0])
	if len(reqs) != 2 || reqs[1].Range == "" || reqs[1].Status != 200 || reqs[1].Sent != size {
		t.Fatalf("blob requests: %+v; want a Range request answered 200 with all %d bytes", reqs, size)
	}
	checkVerifyClean(t, s)
}

// TestPullRetriesServerErrors: 500, 503 and 429 (with Retry-After) on
// manifests and blobs are retried.
func TestPullRetriesServerErrors(t *testing.T) {
	ref, p, layers := bigImage(t)
	p.Add(
		faultproxy.Rule{Path: "/manifests/", Fault: faultproxy.Status, Status: 503, Times: 1},
		faultproxy.Rule{Path: layers[0].digest().String(), Fault: faultproxy.Status, Status: 500, Times: 2},
		faultproxy.Rule{Path: layers[1].digest().String(), Fault: faultproxy.Status, Status: 429, RetryAfter: "1", Times: 1},
	)
	start := time.Now()
	s, img := pullFast(t, ref)
	checkImageAgainst(t, img, layers)
	if n := p.Applied(faultproxy.Status); n != 4 {
		t.Errorf("%d error answers were given, want 4", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("pull took %v: Retry-After must be capped by MaxBackoff", d)
	}
	checkVerifyClean(t, s)
}

// TestPullStalledBlobTimesOut: a response that stops sending is abandoned
// after the stall timeout and resumed.
func TestPullStalledBlobTimesOut(t *testing.T) {
	ref, p, layers := bigImage(t)
	size := int64(len(layers[0].blob))
	p.Add(
		faultproxy.Rule{Path: "/manifests/", Fault: faultproxy.Stall, After: 0, Times: 1},
		faultproxy.Rule{Path: layers[0].digest().String(), Fault: faultproxy.Stall, After: size / 4, Times: 1},
	)
	start := time.Now()
	s := openStoreWith(t, "", stallNetwork)
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer img.Close()
	checkImageAgainst(t, img, layers)
	reqs := blobRequests(p, layers[0])
	if len(reqs) != 2 || reqs[0].Fault != faultproxy.Stall {
		t.Fatalf("blob requests: %+v", reqs)
	}
	if start, ok := faultproxy.ParseRange(reqs[1].Range); !ok || start != size/4 {
		t.Fatalf("resumed request %+v, want Range from %d", reqs[1], size/4)
	}
	if d := time.Since(start); d < 2*stallNetwork.StallTimeout || d > 20*time.Second {
		t.Errorf("pull took %v with two stalls of %v", d, stallNetwork.StallTimeout)
	}
	checkVerifyClean(t, s)
}

// TestPullGivesUp: a registry that keeps failing fails the pull after
// Network.Attempts, with a final error naming the blob, and nothing of it
// stored.
func TestPullGivesUp(t *testing.T) {
	ref, p, layers := bigImage(t)
	p.Add(faultproxy.Rule{Path: layers[0].digest().String(), Fault: faultproxy.Status, Status: 502})
	s := openFastStore(t, "")
	start := time.Now()
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !contains(err, layers[0].digest().String()) || !contains(err, "giving up after 4 attempts") || !contains(err, "502") {
		t.Fatalf("err = %v", err)
	}
	if n := len(blobRequests(p, layers[0])); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("giving up took %v", d)
	}
	if exists(s.blobPath(layers[0].digest())) {
		t.Error("blob stored")
	}
	checkNoTemps(t, s)
}

// TestPullWrongBytesAfterResume: bytes corrupted in a resumed response
// fail the digest check of the whole blob.
func TestPullWrongBytesAfterResume(t *testing.T) {
	ref, p, layers := bigImage(t)
	size := int64(len(layers[0].blob))
	d := layers[0].digest().String()
	p.Add(
		faultproxy.Rule{Path: d, Fault: faultproxy.Drop, After: size / 2, Times: 1},
		faultproxy.Rule{Path: d, Fault: faultproxy.Corrupt, After: 10, Times: 1},
	)
	s := openFastStore(t, "")
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if !isErr(err, ErrDigestMismatch) || !contains(err, d) {
		t.Fatalf("err = %v, want a digest mismatch naming %s", err, d)
	}
	if exists(s.blobPath(layers[0].digest())) {
		t.Error("corrupt blob stored")
	}
	checkNoTemps(t, s)
}

func checkVerifyClean(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Verify(context.Background(), VerifyOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("Verify: %v %+v", err, rep)
	}
}
