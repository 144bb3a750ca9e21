package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// DefaultSpanCache is the memory for decoded spans when Options.SpanCache
// is 0: about 25 spans, enough for read-ahead of two readers walking the
// image (8 spans each) plus spans random readers come back to; the
// kernel's page cache keeps the file data itself. It keeps a mount
// server within issue 6's memory budget (VmHWM about 60 MiB after a full
// read of the benchmark image, against 85 MiB at 64 MiB, when spans left
// only by eviction; 38-47 MiB since they leave once read). Readers of
// everything (ocifs build) want more: see the CLI's --span-cache.
const DefaultSpanCache = 32 << 20

// spanCache is a store's bounded LRU of decoded spans, shared by all the
// layers its images read from compressed blobs. Each span is decoded
// once however many readers want it at the same time (later ones wait
// for the first: singleflight), and read-ahead decodes spans in the
// background, from a short queue drained by at most GOMAXPROCS-1
// goroutines (at least one), which end when it is empty. Leaving a P free matters: decoding is
// CPU-bound, and with every P decoding, the FUSE handlers that answer
// mkfs.ext4 would wait for preemption (a warm build on 2 CPUs took 8%
// longer with two read-ahead goroutines than with one).
//
// Memory: cached spans take at most max bytes (buffer capacities). On
// top of that come the spans being decoded (one per reader that missed,
// and the read-ahead goroutines) and a few free buffers kept for reuse. A
// buffer is reused only when no reader is copying from it: readers pin
// the entry while they copy.
type spanCache struct {
	max    int64
	slots  int // read-ahead goroutines at most
	nextID atomic.Uint64

	mu      sync.Mutex // guards used, lru, m, free, queue, workers and the entries' refs, gone, elem
	used    int64
	lru     list.List // of *spanEntry, most recent first
	m       map[spanKey]*spanEntry
	free    [][]byte
	queue   []readAheadJob // spans to decode in the background, nearest first
	workers int            // goroutines draining queue
	room    sync.Cond      // on c.mu: signaled when spans leave the cache (decodeAhead waits for room)

	stats spanStats
}

// spanStats count what the cache did, for tests and benchmarks.
type spanStats struct {
	hits, misses, waits, evictions atomic.Int64
	readAheads                     atomic.Int64 // spans queued for read-ahead
	ordered                        atomic.Int64 // spans Image.DecodeAhead went to decode
	decodes                        atomic.Int64 // spans decoded (by readers and read-ahead)
	released                       atomic.Int64 // spans dropped once used up
}

// SpanStats are what a store's span cache did since it was opened (see
// Store.SpanStats): spans read from the cache (Hits), read after waiting
// for a decode under way (Waits), decoded by a reader (Misses) or in all
// (Decodes, read-ahead included), queued for read-ahead (ReadAheads: a
// queued span may be decoded by a reader first, or skipped), taken up by
// Image.DecodeAhead (Ordered: likewise), and evicted by the size bound
// (Evictions) or dropped because every byte of the tree's files in them
// was read (Released).
type SpanStats struct {
	Hits, Waits, Misses, Decodes, ReadAheads, Ordered, Evictions, Released int64
}

func (s SpanStats) String() string {
	return fmt.Sprintf("spans: %d decoded (%d by readers that missed), %d queued to read ahead, %d decoded ahead in walk order, %d hits, %d waits, %d evicted, %d released",
		s.Decodes, s.Misses, s.ReadAheads, s.Ordered, s.Hits, s.Waits, s.Evictions, s.Released)
}

// SpanStats reports what the span cache did (layers read from their
// compressed blobs: compact mode, lazy layers).
func (s *Store) SpanStats() SpanStats {
	st := &s.spans.stats
	return SpanStats{Hits: st.hits.Load(), Waits: st.waits.Load(), Misses: st.misses.Load(), Decodes: st.decodes.Load(),
		ReadAheads: st.readAheads.Load(), Ordered: st.ordered.Load(), Evictions: st.evictions.Load(), Released: st.released.Load()}
}

// spanKey names a span: a content's id (one per open layer) and the
// span's number.
type spanKey struct {
	id   uint64
	span int
}

type spanEntry struct {
	key   spanKey
	buf   []byte // the buffer decoded into (accounted and recycled)
	data  []byte // the span's bytes, inside buf
	err   error
	done  chan struct{} // closed once data or err is set
	elem  *list.Element // while in lru
	refs  int           // pins: the decoder and readers copying
	gone  bool          // out of the cache: recycle data at refs == 0
	ahead bool          // decoded by read-ahead
}

// maxFree is how many evicted buffers are kept for reuse.
const maxFree = 8

// maxQueue bounds the read-ahead queue; requests beyond it are dropped
// (the reader decodes those spans itself if it gets there).
const maxQueue = 2 * readAheadSpans

type readAheadJob struct {
	key    spanKey
	size   int
	decode decodeFunc
	usedUp func() bool // see decodeNow
}

// spanAlign rounds buffer sizes, so that spans of slightly different
// lengths (gzip spans end at the first block boundary past 1 MiB) reuse
// each other's buffers.
const spanAlign = 128 << 10

func newSpanCache(bound int64) *spanCache {
	if bound == 0 {
		bound = DefaultSpanCache
	}
	c := &spanCache{max: bound, slots: max(1, runtime.GOMAXPROCS(0)-1), m: map[spanKey]*spanEntry{}}
	c.room.L = &c.mu
	return c
}

// newID returns a key space for one open layer.
func (c *spanCache) newID() uint64 { return c.nextID.Add(1) }

// decodeFunc decodes a span into buf and returns its bytes, a part of
// buf.
type decodeFunc func(buf []byte) ([]byte, error)

// read calls use with span key's bytes, decoding them into a buffer of
// size bytes first unless they are cached or being decoded. use must not
// keep the slice. A reader that waited for a read-ahead decode that
// failed decodes the span itself: the failure belongs to a speculative
// attempt, perhaps made under conditions that no longer hold (a lazy
// layer's registry that has since recovered), not to this read. A
// read-ahead that timed out is the exception: its error is this read's
// too, so that a lazy read never waits much past its ReadTimeout.
func (c *spanCache) read(key spanKey, size int, decode decodeFunc, use func([]byte)) error {
	for {
		c.mu.Lock()
		e, ok := c.m[key]
		if ok {
			e.refs++
			if e.elem != nil {
				c.lru.MoveToFront(e.elem)
				c.stats.hits.Add(1)
			} else {
				c.stats.waits.Add(1)
			}
			c.mu.Unlock()
			<-e.done
		} else {
			e = c.start(key)
			c.stats.misses.Add(1)
			c.mu.Unlock()
			c.fill(e, size, decode)
		}
		if e.err != nil && ok && e.ahead && !errors.Is(e.err, context.DeadlineExceeded) {
			c.unpin(e)
			continue // the failed entry left the map: the next pass decodes
		}
		err := e.err
		if err == nil {
			use(e.data)
		}
		c.unpin(e)
		return err
	}
}

// readAhead queues key for decoding in the background (decodeNow, with
// usedUp) unless it is cached, being decoded or queued. It reports false
// when the queue is full: the caller stops asking for now. Workers (at
// most c.slots) start when there is work and end when the queue is empty.
func (c *spanCache) readAhead(key spanKey, size int, decode decodeFunc, usedUp func() bool) bool {
	if c.max <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return true
	}
	for _, j := range c.queue {
		if j.key == key {
			return true
		}
	}
	if len(c.queue) >= maxQueue {
		return false
	}
	c.queue = append(c.queue, readAheadJob{key, size, decode, usedUp})
	c.stats.readAheads.Add(1)
	if c.workers < c.slots {
		c.workers++
		go c.readAheadWorker()
	}
	return true
}

func (c *spanCache) readAheadWorker() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.workers--
			c.mu.Unlock()
			return
		}
		j := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.decodeNow(j.key, j.size, j.decode, j.usedUp)
	}
}

// start registers a span being decoded, pinned once for the decoder.
// c.mu is held.
func (c *spanCache) start(key spanKey) *spanEntry {
	e := &spanEntry{key: key, done: make(chan struct{}), refs: 1}
	c.m[key] = e
	return e
}

// fill decodes e and publishes the result: cached if it decoded, fits,
// and was not dropped meanwhile.
func (c *spanCache) fill(e *spanEntry, size int, decode decodeFunc) {
	buf := c.alloc(size)
	c.stats.decodes.Add(1)
	data, err := decode(buf)
	c.mu.Lock()
	e.buf, e.data, e.err = buf, data, err
	switch {
	case err != nil || c.m[e.key] != e || int64(cap(buf)) > c.max:
		if c.m[e.key] == e {
			delete(c.m, e.key)
		}
		e.gone = true
		if err != nil {
			e.data = nil
		}
	default:
		e.elem = c.lru.PushFront(e)
		c.used += int64(cap(buf))
		c.evict()
	}
	c.mu.Unlock()
	close(e.done)
}

// evict drops least recently used spans until the cache fits. c.mu is held.
func (c *spanCache) evict() {
	for c.used > c.max {
		e := c.lru.Remove(c.lru.Back()).(*spanEntry)
		c.remove(e)
		c.stats.evictions.Add(1)
	}
}

// remove takes a cached entry out of the cache. c.mu is held.
func (c *spanCache) remove(e *spanEntry) {
	if e.elem != nil {
		c.lru.Remove(e.elem)
		e.elem = nil
		c.used -= int64(cap(e.buf))
	}
	delete(c.m, e.key)
	e.gone = true
	if e.refs == 0 {
		c.recycle(e)
	}
	c.room.Broadcast()
}

func (c *spanCache) unpin(e *spanEntry) {
	c.mu.Lock()
	e.refs--
	if e.refs == 0 && e.gone {
		c.recycle(e)
	}
	c.mu.Unlock()
}

// recycle keeps an unreferenced buffer for reuse. c.mu is held.
func (c *spanCache) recycle(e *spanEntry) {
	if e.buf != nil && len(c.free) < maxFree {
		c.free = append(c.free, e.buf[:cap(e.buf)])
	}
	e.buf, e.data = nil, nil
}

// alloc returns a buffer of n bytes, reused if one is free.
func (c *spanCache) alloc(n int) []byte {
	c.mu.Lock()
	for i, b := range c.free {
		if cap(b) >= n {
			last := len(c.free) - 1
			c.free[i], c.free[last] = c.free[last], nil
			c.free = c.free[:last]
			c.mu.Unlock()
			return b[:n]
		}
	}
	c.mu.Unlock()
	return make([]byte, n, (n+spanAlign-1)/spanAlign*spanAlign)
}

// release drops a cached span that will not be read again (every byte of
// live data in it was read; see seekContent.consume), so that its buffer
// is reused at once instead of growing the process.
func (c *spanCache) release(key spanKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && e.elem != nil {
		c.remove(e)
		c.stats.released.Add(1)
	}
}

// waitRoom returns once the cached spans take at most limit bytes, or
// stop says so; stop is checked again whenever the cache shrinks (callers
// that set it call wake).
func (c *spanCache) waitRoom(limit int64, stop *atomic.Bool) {
	c.mu.Lock()
	for c.used > limit && !stop.Load() {
		c.room.Wait()
	}
	c.mu.Unlock()
}

// wake wakes waitRoom's waiters to check their stop flags.
func (c *spanCache) wake() {
	c.mu.Lock()
	c.room.Broadcast()
	c.mu.Unlock()
}

// decodeNow decodes span key in the calling goroutine, as read-ahead
// would, unless it is cached or being decoded, or usedUp (nil: never)
// reports that its readers are done with it (seekContent.usedUp). A span
// used up while it was decoded, by a reader that decoded it too, is
// released at once rather than left cached until evicted.
func (c *spanCache) decodeNow(key spanKey, size int, decode decodeFunc, usedUp func() bool) {
	if usedUp != nil && usedUp() {
		return
	}
	c.mu.Lock()
	if _, ok := c.m[key]; ok {
		c.mu.Unlock()
		return
	}
	e := c.start(key)
	e.ahead = true
	c.mu.Unlock()
	c.fill(e, size, decode)
	c.unpin(e)
	if usedUp != nil && usedUp() {
		c.release(key)
	}
}

// drop removes a closed layer's spans and read-ahead jobs; spans being
// decoded are not cached when they finish.
func (c *spanCache) drop(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if k.id == id {
			c.remove(e)
		}
	}
	kept := c.queue[:0]
	for _, j := range c.queue {
		if j.key.id != id {
			kept = append(kept, j)
		}
	}
	c.queue = kept
}

// cached reports whether key is decoded and cached, for tests.
func (c *spanCache) cached(key spanKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return ok && e.elem != nil
}

// usage returns the bytes of cached spans, for tests.
func (c *spanCache) usage() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// SpanStats is the Store's SpanStats: its span cache is shared by all
// the images it opened.
func (img *Image) SpanStats() SpanStats { return img.store.SpanStats() }
