package main

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress is drawn only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// pullBars draws one bar per layer of a pull. Its update method is the
// cache.PullOptions.Progress callback and may be called from several
// goroutines.
type pullBars struct {
	p *mpb.Progress

	mu   sync.Mutex // guards bars
	bars map[int]*layerBar
}

type layerBar struct {
	bar   *mpb.Bar
	state atomic.Int32 // cache.State, read by the decorator while drawing
}

func newPullBars(ctx context.Context, w io.Writer) *pullBars {
	return &pullBars{
		p:    mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(120*time.Millisecond)),
		bars: map[int]*layerBar{},
	}
}

func (pb *pullBars) update(p cache.Progress) {
	lb := pb.bar(p)
	lb.state.Store(int32(p.State))
	switch p.State {
	case cache.StateCached, cache.StateDone:
		lb.bar.SetTotal(p.Size, true)
	default:
		lb.bar.SetCurrent(p.Done)
	}
}

// bar returns the bar of p's layer, adding bars in layer order: the first
// report of every layer (waiting) arrives before any work starts.
func (pb *pullBars) bar(p cache.Progress) *layerBar {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if lb, ok := pb.bars[p.Layer]; ok {
		return lb
	}
	lb := &layerBar{}
	name := p.Digest.Hex
	if len(name) > 12 {
		name = name[:12]
	}
	state := decor.Any(func(decor.Statistics) string {
		return cache.State(lb.state.Load()).String()
	}, decor.WC{W: 9, C: decor.DindentRight})
	lb.bar = pb.p.AddBar(p.Size,
		mpb.PrependDecorators(decor.Name(name+" ", decor.WC{C: decor.DindentRight}), state),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
	)
	pb.bars[p.Layer] = lb
	return lb
}

// finish stops the bars that did not complete and waits for the last draw.
func (pb *pullBars) finish() {
	pb.mu.Lock()
	for _, lb := range pb.bars {
		if !lb.bar.Completed() {
			lb.bar.Abort(false)
		}
	}
	pb.mu.Unlock()
	pb.p.Wait()
}
