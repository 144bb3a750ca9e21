package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/overlay"
)

// A --lazy mount of an image whose layers are not in the cache is served
// while they download: the server pulls them top layer first in the
// background, and each layer, once complete and verified, joins the
// partial merge the mount answers from (overlay.Partial, fusefs
// MountFilling). While lookups wait for layers, the downloads of lower
// layers yield the link to the layers above them, which those lookups
// need first (a listing needs every layer, so it changes nothing). While
// the registry sends nothing for the mount's --lazy-timeout, requests
// that wait for layers fail with EIO, as lazy reads do. Once every layer
// is in, the mount serves the complete tree as any mount does.

// fillImage is an image filling in the background: the mount's
// fusefs.Filler and its overlay.LayerReader.
type fillImage struct {
	store  *cache.Store
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns: the pull has ended

	resolved chan struct{} // closed by the first Resolved
	once     sync.Once
	digest   v1.Hash      // the manifest's; set before resolved is closed
	manifest *v1.Manifest // set before resolved is closed
	config   *v1.ConfigFile

	// contents holds the layers opened as they became ready, by position
	// (allocated before resolved is closed); img is the complete image,
	// which reads go to once it is there.
	contents []atomic.Pointer[cache.LayerContent]
	img      atomic.Pointer[cache.Image]
	// reading is held shared by reads from contents, and exclusively to
	// close them once img serves every read.
	reading sync.RWMutex

	mu      sync.Mutex // guards what follows
	arrived []bool     // by position: complete in the store
	layers  []*overlay.Layer
	low     int // layers[low:] are merged into state.Partial
	state   fusefs.FillState
	changed chan struct{}
	failed  bool // state.Err is for good
	closed  bool
	moved   bool // a retry resolved the ref to other layers
	stalled bool // state.Err is the watchdog's: nothing arrived for timeout

	kick chan struct{} // a layer arrived: merge again

	mounted atomic.Value // the mount's lookupCounter, once mounted
	waiting atomic.Bool  // lookups waited at the last yield; for the log

	timeout  time.Duration // --lazy-timeout: see watch
	lastByte atomic.Int64  // when the pull last reported progress (UnixNano)
}

func newFillImage(store *cache.Store, log *slog.Logger) *fillImage {
	ctx, cancel := context.WithCancel(context.Background())
	return &fillImage{store: store, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		resolved: make(chan struct{}), changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// pullOptions sets po up to report to f.
func (f *fillImage) pullOptions(po cache.PullOptions) cache.PullOptions {
	po.TopFirst = true
	progress := po.Progress
	po.Progress = func(p cache.Progress) {
		if !f.yields(p.Layer) { // a trickle says nothing of the layers needed
			f.lastByte.Store(time.Now().UnixNano())
		}
		if progress != nil {
			progress(p)
		}
	}
	po.Resolved = f.onResolved
	po.LayerReady = f.onLayerReady
	po.Yield = f.yield
	return po
}

// onResolved records the first pull's manifest. A retry resolves the ref
// again; if it then names other layers, the retry fails once pulled (see
// complete), and what it reports meanwhile is ignored.
func (f *fillImage) onResolved(digest v1.Hash, m *v1.Manifest, cf *v1.ConfigFile) {
	first := false
	f.once.Do(func() {
		first = true
		f.digest, f.manifest, f.config = digest, m, cf
		f.mu.Lock()
		f.layers = make([]*overlay.Layer, len(m.Layers))
		f.arrived = make([]bool, len(m.Layers))
		f.low = len(m.Layers)
		f.mu.Unlock()
		f.contents = make([]atomic.Pointer[cache.LayerContent], len(m.Layers))
		close(f.resolved)
	})
	if !first && !sameLayers(m, f.manifest) {
		f.mu.Lock()
		f.moved = true
		f.mu.Unlock()
	}
}

// sameLayers reports whether a and b list the same layer blobs.
func sameLayers(a, b *v1.Manifest) bool {
	return slices.EqualFunc(a.Layers, b.Layers, func(a, b v1.Descriptor) bool { return a.Digest == b.Digest })
}

// onLayerReady opens a complete layer and, when it extends the run of
// known layers from the top, merges them again.
func (f *fillImage) onLayerReady(i int) {
	<-f.resolved
	if i >= len(f.contents) || f.contents[i].Load() != nil {
		return
	}
	f.mu.Lock()
	moved := f.moved
	if !moved {
		f.arrived[i] = true
	}
	f.mu.Unlock()
	if moved { // position i of another image
		return
	}
	idx, c, err := f.store.OpenLayer(f.ctx, f.manifest.Layers[i], f.config.RootFS.DiffIDs[i])
	if err != nil {
		f.log.Warn("opening a downloaded layer; its paths wait for the whole image", "layer", i, "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.layers == nil || !f.contents[i].CompareAndSwap(nil, c) {
		c.Close()
		return
	}
	f.layers[i] = idx
	f.log.Debug("layer downloaded", "layer", i)
	select { // the merger goroutine merges once for arrivals meanwhile
	case f.kick <- struct{}{}:
	default:
	}
}

// yield tells the pull to slow the download of the layer at position i
// while lookups wait for more layers and a layer above it, which they
// need first (the known layers are a run from the top), is missing.
func (f *fillImage) yield(i int) bool {
	waiting := f.lookupsWait()
	if f.waiting.Swap(waiting) != waiting {
		f.log.Debug("lookups waiting for layers: lower layers yield the link to higher ones", "waiting", waiting)
	}
	return waiting && f.missingAbove(i)
}

// yields is yield without its log.
func (f *fillImage) yields(i int) bool { return f.lookupsWait() && f.missingAbove(i) }

func (f *fillImage) lookupsWait() bool {
	c, _ := f.mounted.Load().(lookupCounter)
	return c != nil && c.WaitingLookups() > 0
}

// missingAbove reports whether a layer above position i has not arrived.
func (f *fillImage) missingAbove(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.moved && i >= 0 && i < len(f.arrived) && slices.Contains(f.arrived[i+1:], false)
}

// lookupCounter is what yield needs of the mount (a *fusefs.Server).
type lookupCounter interface{ WaitingLookups() int }

// merge merges the run of known layers from the top again whenever it
// grows, until the pull ends. It runs apart from the pull's jobs, which
// wait for LayerReady.
func (f *fillImage) merge() {
	for {
		select {
		case <-f.kick:
		case <-f.done:
			return
		}
		f.mu.Lock()
		if f.layers == nil { // complete
			f.mu.Unlock()
			return
		}
		cur, low := f.low, f.low
		for low > 0 && f.layers[low-1] != nil {
			low--
		}
		layers := slices.Clone(f.layers)
		f.mu.Unlock()
		if low == cur || low == 0 { // at 0 the complete tree comes next
			continue
		}
		start := time.Now()
		p, err := overlay.MergePartial(layers, low)
		if err != nil {
			f.log.Warn("merging the layers downloaded so far; their paths wait for the whole image", "from", low, "err", err)
			continue
		}
		f.log.Debug("merged the layers downloaded so far", "from", low, "took", time.Since(start))
		f.mu.Lock()
		if f.state.Tree == nil && !f.closed && !f.failed {
			f.low = low
			// A failure (or stall) stays until run or watch clears it.
			f.publish(fusefs.FillState{Partial: p, Err: f.state.Err})
		}
		f.mu.Unlock()
	}
}

// publish makes st the current state; f.mu is held.
func (f *fillImage) publish(st fusefs.FillState) {
	f.state = st
	close(f.changed)
	f.changed = make(chan struct{})
}

// State implements fusefs.Filler.
func (f *fillImage) State() (fusefs.FillState, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state.Tree != nil || f.failed {
		return f.state, nil
	}
	return f.state, f.changed
}

// ReadLayerAt implements overlay.LayerReader: from the complete image
// once it is there, else from the layer opened when it became ready.
func (f *fillImage) ReadLayerAt(i int, p []byte, off int64) (int, error) {
	if img := f.img.Load(); img != nil {
		return img.ReadLayerAt(i, p, off)
	}
	f.reading.RLock()
	defer f.reading.RUnlock()
	if img := f.img.Load(); img != nil { // complete meanwhile
		return img.ReadLayerAt(i, p, off)
	}
	if i < 0 || i >= len(f.contents) {
		return 0, fmt.Errorf("no layer %d", i)
	}
	c := f.contents[i].Load()
	if c == nil {
		return 0, fmt.Errorf("layer %d is not downloaded yet", i)
	}
	return c.ReadAt(p, off)
}

// run waits for the pull that first started (first), then serves the
// complete image; a pull that fails for a reason a retry may cure (the
// registry unreachable) is retried every backgroundRetry, the requests waiting
// meanwhile failing with EIO. get pulls again.
func (f *fillImage) run(first <-chan getResult, get func(context.Context) (*cache.Image, error)) {
	defer close(f.done)
	go f.merge()
	go f.watch()
	r := <-first
	for {
		if r.err == nil {
			r.err = f.complete(r.img)
			if r.err == nil {
				return
			}
		}
		if f.ctx.Err() != nil {
			return
		}
		code, _ := classify(r.err)
		permanent := code != exitFailure
		// Log first: whoever gets EIO may look for why at once.
		if permanent {
			f.log.Error("the image cannot be served whole; paths still undecided fail with EIO", "err", r.err)
			f.fail(r.err, true)
			return
		}
		f.log.Warn("downloading the image's layers; retrying", "in", backgroundRetry, "err", r.err)
		f.fail(r.err, false)
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(backgroundRetry):
		}
		f.retrying()
		r.img, r.err = get(f.ctx)
	}
}

// complete switches the mount to the complete image.
func (f *fillImage) complete(img *cache.Image) error {
	if !sameLayers(img.Manifest, f.manifest) {
		img.Close()
		return fmt.Errorf("%w: the image changed in the registry while it was mounting; mount it again", cache.ErrInvalidImage)
	}
	tree, err := mergeImage(f.ctx, img, 0)
	if err != nil {
		img.Close()
		return err
	}
	f.img.Store(img)
	f.closeContents() // reads go to img from now on
	f.mu.Lock()
	defer f.mu.Unlock()
	f.layers = nil // the partial merges' indexes: the tree has it all now
	f.publish(fusefs.FillState{Tree: tree})
	f.log.Info("every layer is in; serving the complete tree", "ref", img.Ref)
	return nil
}

// closeContents closes the layers opened while filling, once no read
// uses them.
func (f *fillImage) closeContents() {
	f.reading.Lock()
	defer f.reading.Unlock()
	for i := range f.contents {
		if c := f.contents[i].Swap(nil); c != nil {
			c.Close()
		}
	}
}

// fail publishes a failed pull: waiting requests answer EIO, for good
// if permanent.
func (f *fillImage) fail(err error, permanent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed, f.stalled = permanent, false
	f.publish(fusefs.FillState{Partial: f.state.Partial, Err: err})
}

// retrying publishes that the pull runs again: requests wait again.
func (f *fillImage) retrying() {
	f.lastByte.Store(time.Now().UnixNano())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stalled = false
	f.publish(fusefs.FillState{Partial: f.state.Partial})
}

// watch bounds how long a request waits on a silent registry: while the
// pull has reported no progress for f.timeout (its retries of a stalled
// download take up to Network.Attempts stall timeouts to give up; the
// trickle of a yielding layer does not count), it
// publishes a retryable failure, so that requests waiting for layers
// fail with EIO; once progress resumes, requests wait again.
func (f *fillImage) watch() {
	if f.timeout <= 0 {
		return
	}
	f.lastByte.Store(time.Now().UnixNano())
	tick := time.NewTicker(max(min(f.timeout/4, time.Second), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-tick.C:
		}
		var warn error
		back := false
		f.mu.Lock()
		idle := time.Since(time.Unix(0, f.lastByte.Load())) // after retrying's reset, if any
		switch {
		case f.state.Tree != nil || f.failed || f.closed:
			f.mu.Unlock()
			return
		case f.state.Err != nil && !f.stalled: // the pull failed: run retries it
		case idle >= f.timeout && !f.stalled:
			f.stalled = true
			warn = fmt.Errorf("the registry has sent nothing for %v (--lazy-timeout); still trying", idle.Round(time.Second))
			f.publish(fusefs.FillState{Partial: f.state.Partial, Err: warn})
		case idle < f.timeout && f.stalled:
			f.stalled, back = false, true
			f.publish(fusefs.FillState{Partial: f.state.Partial})
		}
		f.mu.Unlock()
		switch {
		case warn != nil:
			f.log.Warn("downloading the image's layers; paths still undecided fail with EIO until the registry sends again", "err", warn)
		case back: // as loud as the warning it ends
			f.log.Warn("the registry sends again; paths still undecided wait for it")
		}
	}
}

// close stops the pull and closes what was opened.
func (f *fillImage) close() {
	f.cancel()
	<-f.done
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.closeContents()
	if img := f.img.Load(); img != nil {
		img.Close()
	}
}

type getResult struct {
	img *cache.Image
	err error
}

// openFillingMount mounts a --lazy image: at once if the cache has it
// whole or its layers are all read lazily (the pull then returns before
// any layer is fetched whole), else while its layers download.
func openFillingMount(ctx context.Context, g *globals, req *mountRequest, store *cache.Store, po cache.PullOptions) (*openedMount, error) {
	f := newFillImage(store, g.Log)
	f.timeout = req.Lazy.Timeout
	get := func(ctx context.Context) (*cache.Image, error) {
		po := f.pullOptions(po)
		select {
		case <-f.resolved: // a retry: keep to the image being served
			po.Pinned = f.digest
		default:
		}
		return req.Lazy.get(ctx, store, req.Ref, po)
	}
	first := make(chan getResult, 1)
	go func() {
		img, err := get(f.ctx)
		first <- getResult{img, err}
	}()
	var r getResult
	select {
	case <-ctx.Done():
		f.cancel()
		r = <-first
		if r.img != nil {
			r.img.Close()
		}
		f.closeAfterPull()
		return nil, ctx.Err()
	case r = <-first:
	case <-f.resolved:
		select {
		case r = <-first: // done already (or failed: say so, rather than mount)
		default:
			srv, err := fusefs.MountFilling(req.Dir, f, f, mountOptions(g, req, req.Ref))
			go f.run(first, get)
			if err != nil {
				f.close()
				return nil, mountFailure(req, err)
			}
			f.mounted.Store(lookupCounter(srv))
			return &openedMount{srv: srv, fill: f}, nil
		}
	}
	f.closeAfterPull()
	if r.err != nil {
		return nil, r.err
	}
	return mountImage(ctx, g, req, r.img)
}

// closeAfterPull is close for a fill whose pull ended before run started.
func (f *fillImage) closeAfterPull() {
	close(f.done)
	f.close()
}
