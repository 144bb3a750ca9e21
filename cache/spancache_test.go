package cache

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"
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

// TestSpanCacheReadAheadFailure: a reader that waits for a read-ahead
// decode that then fails decodes the span itself and gets its bytes (the
// CI failure this guards: a lazy layer's read-ahead started while the
// registry served corrupt bytes failed a read made after it recovered).
func TestSpanCacheReadAheadFailure(t *testing.T) {
	c := newSpanCache(8 << 20)
	gate := make(chan struct{})
	failed := errors.New("speculative decode failed")
	key := spanKey{1, 0}
	if !c.readAhead(key, 10, func([]byte) ([]byte, error) { <-gate; return nil, failed }, nil) {
		t.Fatal("read-ahead refused")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		_, started := c.m[key]
		c.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("read-ahead did not start")
		}
	}
	res := make(chan error)
	go func() {
		res <- c.read(key, 10, func(b []byte) ([]byte, error) { copy(b, "0123456789"); return b, nil }, func(b []byte) {
			if string(b) != "0123456789" {
				t.Errorf("read %q", b)
			}
		})
	}()
	for c.stats.waits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if err := <-res; err != nil {
		t.Fatalf("read after a failed read-ahead: %v", err)
	}
	if m := c.stats.misses.Load(); m != 1 {
		t.Errorf("%d misses, want 1 (the reader's own decode)", m)
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
