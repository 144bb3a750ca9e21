package main

import (
	"io"
	"log/slog"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// lookups is a lookupCounter that says n.
type lookups int

func (n lookups) WaitingLookups() int { return int(n) }

func manifestOf(digests ...string) *v1.Manifest {
	m := &v1.Manifest{}
	for _, d := range digests {
		m.Layers = append(m.Layers, v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: d}})
	}
	return m
}

// TestFillYield: a layer's download yields only while lookups wait and a
// layer above it is missing; never before the mount serves, and never
// once a retry found the ref moved to other layers.
func TestFillYield(t *testing.T) {
	check := func(f *fillImage, what string, want ...bool) {
		t.Helper()
		for i, w := range want {
			if got := f.yield(i); got != w {
				t.Errorf("%s: yield(%d) = %v, want %v", what, i, got, w)
			}
			if got := f.yields(i); got != w { // the watchdog's view
				t.Errorf("%s: yields(%d) = %v, want %v", what, i, got, w)
			}
		}
	}
	for _, tc := range []struct {
		lookups lookups
		want    []bool
	}{{0, []bool{false, false, false, false}}, {2, []bool{true, true, true, false}}} {
		f := newFillImage(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		f.onResolved(v1.Hash{}, manifestOf("a", "b", "c", "d"), &v1.ConfigFile{})
		check(f, "before the mount serves", false, false, false, false)
		f.mounted.Store(lookupCounter(tc.lookups))
		check(f, "no layer in", tc.want...)

		f.mu.Lock()
		f.arrived[3] = true
		f.mu.Unlock()
		check(f, "top layer in", tc.want[0], tc.want[1], false, false)

		f.mu.Lock()
		f.arrived[1] = true // its OpenLayer may have failed: it is downloaded
		f.mu.Unlock()
		check(f, "top and second layers in", tc.want[0], tc.want[1], false, false)

		f.onResolved(v1.Hash{}, manifestOf("a", "b", "c", "d"), &v1.ConfigFile{})
		check(f, "a retry resolved the same layers", tc.want[0], tc.want[1], false, false)
		f.onResolved(v1.Hash{}, manifestOf("a", "x"), &v1.ConfigFile{})
		check(f, "a retry resolved other layers", false, false, false, false, false)
	}
}
