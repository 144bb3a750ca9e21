package faultproxy

import (
	"bytes"
	"testing"
	"time"
)

func TestSetRate(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 1<<20)
	p := Start(t, backend(t, blob))
	p.SetRate(1 << 20)
	start := time.Now()
	code, b, err := get(t, p, "")
	d := time.Since(start)
	if err != nil || code != 200 || !bytes.Equal(b, blob) {
		t.Fatalf("capped transfer: %d %v %d bytes", code, err, len(b))
	}
	// 1 MiB at 1 MiB/s, less the initial burst of rate/10.
	if d < 800*time.Millisecond || d > 5*time.Second {
		t.Fatalf("1 MiB at 1 MiB/s took %v", d)
	}
	// Uncapped, the same transfer takes milliseconds; a loaded machine
	// may stretch that, but not to the capped time.
	p.SetRate(0)
	start = time.Now()
	if _, _, err := get(t, p, ""); err != nil || time.Since(start) > d/2 {
		t.Fatalf("uncapped transfer: %v in %v (capped: %v)", err, time.Since(start), d)
	}
}
