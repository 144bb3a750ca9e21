package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ContentLazy: an eStargz or zstd:chunked layer read from its registry
// chunk by chunk as files are read, each chunk checked against the TOC,
// kept in a partial blob under ocifs/lazy until the whole blob is there.
// (The value predates zstd:chunked and is kept for both.)
const ContentLazy ContentKind = "estargz-lazy"

// LazyOptions configure images read lazily from their registry (GetLazy).
// Zero fields take the defaults.
type LazyOptions struct {
	// ReadTimeout bounds how long one read waits for bytes from the
	// registry (retries included) before it fails; the mount answers EIO
	// and a later read tries again.
	ReadTimeout time.Duration
	// FetchWindow is the most bytes of the blob one read asks for: the
	// chunk it needs (whatever its size) and the missing chunks after it
	// while they fit, which tar order makes likely to be read next.
	FetchWindow int64
}

// Defaults of LazyOptions.
const (
	DefaultLazyReadTimeout = 30 * time.Second
	DefaultFetchWindow     = 512 << 10
)

// backgroundRun is the most bytes one request of the background fetch
// asks for; a read that needs a piece of a run in flight waits for the
// run at most.
const backgroundRun = 4 << 20

func (o LazyOptions) withDefaults() LazyOptions {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultLazyReadTimeout
	}
	if o.FetchWindow <= 0 {
		o.FetchWindow = DefaultFetchWindow
	}
	return o
}

// lazyLayer is one eStargz or zstd:chunked layer being read from its
// registry. It is a spanSource (one span per chunk), so reads go through
// the store's span cache, with its singleflight and read-ahead.
type lazyLayer struct {
	s      *Store
	desc   v1.Descriptor
	diffID v1.Hash
	format tocFormat
	x      *lazyIndex
	pb     *partialBlob
	src    *rangeSource
	opts   LazyOptions
	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	noRange     atomic.Bool  // the registry ignored a Range request
	noRangeOnce sync.Once    // guards the notice
	streaming   atomic.Bool  // a whole-blob download runs
	demand      atomic.Int32 // reads fetching now; the background fetch yields to them
	committed   atomic.Bool

	memberMu sync.Mutex    // guards member
	member   *memberReader // kept by the last decode (memberAt)
	stats    struct {
		memberOpens atomic.Int64 // members decoded from their start, for tests
	}

	flushMu  sync.Mutex     // guards flushing, closed
	flushing bool           // a flushLater goroutine runs
	closed   bool           // close began: no new flushLater goroutines
	flushes  sync.WaitGroup // flushLater goroutines
}

var _ spanSource = (*lazyLayer)(nil)

// openLazyLayer prepares a layer for lazy reading: its TOC from the cache
// or with Range requests (see tocFormat.fetchTOC), checked against the
// manifest's annotation, and its partial blob.
func (s *Store) openLazyLayer(ctx context.Context, src *rangeSource, desc v1.Descriptor, diffID v1.Hash, sp lazySpec, opts LazyOptions) (*lazyLayer, error) {
	want, err := parseDigest(desc.Annotations[sp.pinKey])
	if err != nil {
		return nil, errorf(ErrInvalidImage, "layer %s: annotation %s: %v", desc.Digest, sp.pinKey, err)
	}
	x, tail, err := s.lazyTOC(ctx, src, desc, sp.format, want)
	if err != nil {
		return nil, err
	}
	pb, err := s.openPartial(desc.Digest, x)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &lazyLayer{s: s, desc: desc, diffID: diffID, format: sp.format, x: x, pb: pb, src: src, opts: opts.withDefaults(), ctx: lctx, cancel: cancel}
	if last := len(x.pieces) - 1; tail != nil && last >= 0 {
		if run := pb.claim(last, 0); len(run) == 1 {
			if err := pb.land(last, tail); err != nil {
				l.close()
				return nil, err
			}
		}
	}
	return l, nil
}

// lazyTOC returns the layer's index from its TOC: the saved one if it
// still matches the annotation, else fetched. tail is the blob's bytes
// from the TOC on (TOC and footer) when they were all fetched now.
func (s *Store) lazyTOC(ctx context.Context, src *rangeSource, desc v1.Descriptor, f tocFormat, want v1.Hash) (x *lazyIndex, tail []byte, err error) {
	if b, err := os.ReadFile(s.lazyPath(desc.Digest, ".toc")); err == nil && len(b) > 8 && sha256Hash(b[8:]) == want {
		if toc, err := f.parseTOC(b[8:], s.limits); err == nil {
			x, err := buildLazyIndex(toc, int64(binary.BigEndian.Uint64(b)), desc.Size, f.artifact, s.limits)
			if err != nil {
				return nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
			}
			return x, nil, nil
		}
	}
	t, err := f.fetchTOC(ctx, src, desc.Size, s.limits)
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s (%s): %w", desc.Digest, f, err)
	}
	if got := sha256Hash(t.pinned); got != want {
		return nil, nil, mismatchf("layer %s: %s TOC hashes to %s, the manifest's annotation says %s", desc.Digest, f, got, want)
	}
	toc, err := f.parseTOC(t.pinned, s.limits)
	if err != nil {
		return nil, nil, errorf(ErrInvalidImage, "layer %s: %v", desc.Digest, err)
	}
	if x, err = buildLazyIndex(toc, t.dataEnd, desc.Size, f.artifact, s.limits); err != nil {
		return nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	s.saveTOC(desc.Digest, t.dataEnd, t.pinned)
	return x, t.tail, nil
}

// saveTOC keeps the verified TOC for later mounts; failing to is not an
// error (the next mount fetches it again).
func (s *Store) saveTOC(d v1.Hash, tocOff int64, raw []byte) {
	b := binary.BigEndian.AppendUint64(nil, uint64(tocOff))
	err := os.MkdirAll(filepath.Dir(s.lazyPath(d, "")), 0o755)
	if err == nil {
		err = s.writeFileAtomic(s.lazyPath(d, ".toc"), append(b, raw...))
	}
	if err != nil {
		s.log.Warn("saving the TOC of a lazy layer", "layer", d, "err", err)
	}
}

// ensure returns once piece i is in the partial blob: fetched now with
// the missing pieces after it (FetchWindow), or by whoever fetches it.
func (l *lazyLayer) ensure(ctx context.Context, i int) error {
	for {
		have, claimed, changed := l.pb.state(i)
		if have {
			return nil
		}
		if l.noRange.Load() {
			l.startWhole()
		} else if !claimed {
			if run := l.pb.claim(i, l.opts.FetchWindow); len(run) > 0 {
				if err := l.fetchRun(ctx, run, true); err != nil {
					return err
				}
			}
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			p := l.x.pieces[i]
			return fmt.Errorf("waiting for bytes %d-%d of layer %s: %w", p.start, p.end, l.desc.Digest, ctx.Err())
		}
	}
}

// fetchRun fetches a run of claimed pieces with one Range request,
// verifies each and lands it. A registry that ignores Range switches the
// layer to whole-blob download.
func (l *lazyLayer) fetchRun(ctx context.Context, run []int, demand bool) error {
	if demand {
		l.demand.Add(1)
		defer l.demand.Add(-1)
	}
	from, to := l.x.pieces[run[0]].start, l.x.pieces[run[len(run)-1]].end
	data, err := l.src.readRange(ctx, from, to)
	if errors.Is(err, errNoRange) {
		l.pb.unclaim(run)
		l.enterNoRange()
		return nil
	}
	if err != nil {
		l.pb.unclaim(run)
		return err
	}
	for k, i := range run {
		p := l.x.pieces[i]
		if err := l.landVerified(i, data[p.start-from:p.end-from]); err != nil {
			l.pb.unclaim(run[k+1:])
			return err
		}
	}
	if demand {
		l.flushLater()
		return nil
	}
	return l.pb.flush()
}

// flushLater records the landed pieces in the background, so that a read
// does not wait for a sync of the partial blob (the pieces are marked
// present already; the record only spares a later mount fetching them
// again). close records what is still pending.
func (l *lazyLayer) flushLater() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.flushing || l.closed {
		return
	}
	l.flushing = true
	l.flushes.Add(1)
	go func() {
		defer l.flushes.Done()
		for {
			if err := l.pb.flush(); err != nil {
				l.s.log.Warn("recording the fetched pieces of a lazy layer", "layer", l.desc.Digest, "err", err)
			}
			l.flushMu.Lock()
			if l.closed || !l.pb.hasPending() {
				l.flushing = false
				l.flushMu.Unlock()
				return
			}
			l.flushMu.Unlock()
		}
	}()
}

// landVerified checks a claimed piece's chunks against the TOC and writes
// it; a piece that fails is given back, not written.
func (l *lazyLayer) landVerified(i int, b []byte) error {
	if err := l.verifyPiece(i, b); err != nil {
		l.pb.unclaim([]int{i})
		return err
	}
	return l.pb.land(i, b)
}

// verifyPiece decodes a member and checks every chunk it holds.
func (l *lazyLayer) verifyPiece(i int, b []byte) error {
	chunks := l.x.pieces[i].chunks
	if len(chunks) == 0 {
		return nil
	}
	zr, release, err := l.format.member(b)
	if err != nil {
		return l.chunkError(chunks[0], err)
	}
	defer release()
	var pos int64
	for _, ci := range chunks {
		c := l.x.chunks[ci]
		if _, err := io.CopyN(io.Discard, zr, c.inner-pos); err != nil {
			return l.chunkError(ci, err)
		}
		h := sha256.New()
		if _, err := io.CopyN(h, zr, c.size); err != nil {
			return l.chunkError(ci, err)
		}
		if [32]byte(h.Sum(nil)) != c.digest {
			return mismatchf("layer %s: chunk at offset %d of its data (%d bytes, blob bytes %d-%d) does not match the TOC's digest",
				l.desc.Digest, c.vOff, c.size, l.x.pieces[i].start, l.x.pieces[i].end)
		}
		pos = c.inner + c.size
	}
	return nil
}

// chunkError reports a member that does not decode to its chunks: its
// bytes are not those the TOC pins (corrupted on the way or on disk, or a
// layer whose TOC lies), as a digest mismatch would say.
func (l *lazyLayer) chunkError(ci int, err error) error {
	c := l.x.chunks[ci]
	p := l.x.pieces[c.piece]
	return mismatchf("layer %s: the %s member at blob bytes %d-%d does not decode to the TOC's chunk: %v", l.desc.Digest, l.format, p.start, p.end, err)
}

// enterNoRange switches to downloading the whole blob, with one notice.
func (l *lazyLayer) enterNoRange() {
	l.noRangeOnce.Do(func() {
		l.noRange.Store(true)
		l.s.log.Warn("the registry ignores Range requests; downloading the layer whole", "layer", l.desc.Digest)
	})
	l.startWhole()
}

// startWhole starts the whole-blob download unless it runs.
func (l *lazyLayer) startWhole() {
	if !l.streaming.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.streaming.Store(false)
		if err := l.streamWhole(l.ctx); err != nil && l.ctx.Err() == nil {
			l.s.log.Warn("downloading layer", "layer", l.desc.Digest, "err", err)
		}
		l.pb.unclaim(nil) // wake waiters: they restart it or time out
	}()
}

// streamWhole reads the blob from its start and lands every piece that is
// neither present nor being fetched.
func (l *lazyLayer) streamWhole(ctx context.Context) error {
	rc, err := l.src.whole(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	var unsynced int64
	for i, p := range l.x.pieces {
		buf := make([]byte, p.end-p.start)
		if _, err := io.ReadFull(rc, buf); err != nil {
			return fmt.Errorf("reading blob %s at %d: %w", l.desc.Digest, p.start, err)
		}
		if run := l.pb.claim(i, 0); len(run) == 1 {
			if err := l.landVerified(i, buf); err != nil {
				return err
			}
		}
		if unsynced += p.end - p.start; unsynced >= backgroundRun {
			if err := l.pb.flush(); err != nil {
				return err
			}
			unsynced = 0
		}
	}
	return l.pb.flush()
}

func (l *lazyLayer) close() error {
	l.cancel()
	l.flushMu.Lock()
	l.closed = true
	l.flushMu.Unlock()
	l.flushes.Wait()
	l.memberMu.Lock()
	if l.member != nil {
		l.member.release()
		l.member = nil
	}
	l.memberMu.Unlock()
	return errors.Join(l.pb.flush(), l.pb.close())
}
