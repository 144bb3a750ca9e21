package cache

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	ti "github.com/ocifs/ocifs/internal/testimage"
)

// endless is an io.ReadCloser that never runs dry.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }
func (endless) Close() error               { return nil }

// TestYieldReader checks the trickle: a read told to yield waits at least
// yieldInterval and returns at most yieldTrickle bytes; once it may go on
// it reads in full again; a cancelled context ends the wait.
func TestYieldReader(t *testing.T) {
	var yield atomic.Bool
	yield.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	y := newYieldReader(ctx, endless{}, time.Minute, yield.Load)
	p := make([]byte, 1<<20)

	start := time.Now()
	n, err := y.Read(p)
	if err != nil || n > yieldTrickle {
		t.Fatalf("yielding read: %d bytes, %v; want at most %d", n, err, yieldTrickle)
	}
	if d := time.Since(start); d < yieldInterval {
		t.Errorf("yielding read returned after %v, before yieldInterval (%v)", d, yieldInterval)
	}

	time.AfterFunc(100*time.Millisecond, func() { yield.Store(false) })
	if n, err := y.Read(p); err != nil || n != len(p) {
		t.Errorf("read once yielding stopped: %d bytes, %v; want %d", n, err, len(p))
	}

	yield.Store(true)
	time.AfterFunc(100*time.Millisecond, cancel)
	if n, err := y.Read(p); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("yielding read cancelled: %d bytes, %v; want context.Canceled", n, err)
	}
}

// TestPullYield: while Yield says so, the base layer's download leaves
// the link to the top layer's; the base layer then completes and the
// image verifies.
func TestPullYield(t *testing.T) {
	host, _ := startRegistry(t)
	r := rand.New(rand.NewChaCha8([32]byte{7}))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return string(b)
	}
	const size = 8 << 20 // incompressible: the blobs are this big
	base := gzipLayer(t, ti.Layer(ti.File("base.bin", random(size))))
	top := gzipLayer(t, ti.Layer(ti.File("top.bin", random(size))))
	ref := host + "/test/yield:v1"
	push(t, ref, imageOf(t, "linux/amd64", base, top))

	var mu sync.Mutex // guards what follows
	var topReady bool
	var baseDone, baseAtTop int64 = 0, -1
	var asked [2]int
	po := PullOptions{
		TopFirst: true,
		Jobs:     2,
		Progress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Layer == 0 {
				baseDone = p.Done
			}
		},
		LayerReady: func(i int) {
			mu.Lock()
			defer mu.Unlock()
			if i == 1 {
				topReady, baseAtTop = true, baseDone
			}
		},
		Yield: func(i int) bool {
			mu.Lock()
			defer mu.Unlock()
			asked[i]++
			return i == 0 && !topReady
		},
	}
	s := openStore(t, "")
	img, err := s.Pull(context.Background(), ref, po)
	must(t, err)
	defer img.Close()
	if asked[0] == 0 || asked[1] == 0 {
		t.Fatalf("Yield asked %v times for layers 0 and 1; want both asked", asked)
	}
	if baseAtTop < 0 || baseAtTop >= 1<<20 {
		t.Errorf("the base layer had %d of %d bytes when the top one was ready; want under 1 MiB while it yields", baseAtTop, len(base.blob))
	}
	// Pull checks each blob's digest and diffID: the base layer arrived
	// whole once it stopped yielding.
	if len(img.Layers) != 2 {
		t.Errorf("pulled image has %d layers, want 2", len(img.Layers))
	}
}

// TestPullYieldLocal: a pull from an OCI layout never asks Yield (its
// reads are local: slowing them frees no link).
func TestPullYieldLocal(t *testing.T) {
	img, _ := threeLayers(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img))
	var asked atomic.Int64
	got, err := openStore(t, "").Pull(context.Background(), "oci:"+dir, PullOptions{Yield: func(int) bool { asked.Add(1); return true }})
	must(t, err)
	got.Close()
	if n := asked.Load(); n != 0 {
		t.Errorf("Yield asked %d times for a pull from an OCI layout, want never", n)
	}
}
