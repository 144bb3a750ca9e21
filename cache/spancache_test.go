package cache

import (
	"io"
	"sync"
	"testing"
)

// TestSpanCacheSingleflight: concurrent misses on one span decode it once.
func TestSpanCacheSingleflight(t *testing.T) {
	c := newSpanCache(8 << 20)
	var decodes, ready sync.WaitGroup
	gate := make(chan struct{})
	var mu sync.Mutex
	n := 0
	decode := func(buf []byte) ([]byte, error) {
		mu.Lock()
		n++
		mu.Unlock()
		<-gate
		for i := range buf {
			buf[i] = byte(i)
		}
		return buf, nil
	}
	for range 8 {
		decodes.Add(1)
		ready.Add(1)
		go func() {
			defer decodes.Done()
			ready.Done()
			err := c.read(spanKey{1, 0}, 1000, decode, func(b []byte) {
				if len(b) != 1000 || b[999] != byte(999%256) {
					t.Errorf("got %d bytes", len(b))
				}
			})
			must(t, err)
		}()
	}
	ready.Wait()
	close(gate)
	decodes.Wait()
	if n != 1 {
		t.Errorf("%d decodes, want 1", n)
	}
	// A failed decode is not cached: the next read decodes again.
	fail := func([]byte) ([]byte, error) { return nil, io.ErrUnexpectedEOF }
	if err := c.read(spanKey{1, 1}, 10, fail, func([]byte) {}); err != io.ErrUnexpectedEOF {
		t.Errorf("failed decode: %v", err)
	}
	if err := c.read(spanKey{1, 1}, 10, func(b []byte) ([]byte, error) { return b, nil }, func([]byte) {}); err != nil {
		t.Errorf("decode after a failure: %v", err)
	}
}

// TestSpanCacheBound: the cache never holds more than its bound, evicts
// the least recently used span, and a span larger than the bound is
// served but not kept.
func TestSpanCacheBound(t *testing.T) {
	c := newSpanCache(4 * spanAlign)
	fill := func(b []byte) ([]byte, error) { return b, nil }
	for i := range 4 {
		must(t, c.read(spanKey{1, i}, spanAlign, fill, func([]byte) {}))
	}
	must(t, c.read(spanKey{1, 0}, spanAlign, fill, func([]byte) {})) // 0 is now the most recent
	must(t, c.read(spanKey{1, 4}, spanAlign, fill, func([]byte) {}))
	if c.usage() != 4*spanAlign {
		t.Errorf("usage %d, want %d", c.usage(), 4*spanAlign)
	}
	c.mu.Lock()
	_, has0 := c.m[spanKey{1, 0}]
	_, has1 := c.m[spanKey{1, 1}]
	c.mu.Unlock()
	if !has0 || has1 {
		t.Errorf("after touching span 0 and adding span 4: span 0 cached %v (want true), span 1 cached %v (want false)", has0, has1)
	}
	must(t, c.read(spanKey{1, 9}, 5*spanAlign, fill, func(b []byte) {
		if len(b) != 5*spanAlign {
			t.Errorf("large span: %d bytes", len(b))
		}
	}))
	if c.usage() > 4*spanAlign {
		t.Errorf("a span over the bound was kept: usage %d", c.usage())
	}
	c.drop(1)
	if c.usage() != 0 || len(c.m) != 0 {
		t.Errorf("after drop: usage %d, %d entries", c.usage(), len(c.m))
	}
}
