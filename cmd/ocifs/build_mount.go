package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/overlay"
)

// buildMount is the private mount a build runs mkfs.ext4 -d over. It
// prefetches file content (mkfs reads every file it lists) and is walked
// ahead of mkfs by a child process (fusefs.WarmWalk, see warm.go), so
// that the round trips run beside mkfs rather than in its way; layers
// read from their compressed blobs are decoded ahead of mkfs in the order
// it reads files (cache.Image.DecodeAhead). It is released as soon as
// mkfs is done: the walk and the decoding stop and the unmount proceeds
// while e2fsck runs.
type buildMount struct {
	srv       *fusefs.Server
	log       *slog.Logger
	stopWarm  func() error // kills the walk; its error if it failed first
	stopAhead func()       // ends DecodeAhead
	img       *cache.Image
	unmounted chan error // Unmount's result, once released
	once      sync.Once  // guards the release
}

func startBuildMount(ctx context.Context, g *globals, tree *overlay.Tree, img *cache.Image, dir string) (*buildMount, error) {
	stopAhead := img.DecodeAhead(tree) // first: it gets a head start on the readers
	srv, err := fusefs.Mount(dir, tree, img, fusefs.Options{Logger: g.Log, FsName: "ocifs:" + img.Ref, Prefetch: true})
	if err != nil {
		stopAhead()
		return nil, err
	}
	stop, err := startWarm(srv.Dir())
	if err != nil {
		g.Log.Debug("building without a warm-up walk", "err", err)
		stop = func() error { return nil }
	}
	return &buildMount{srv: srv, log: g.Log, stopWarm: stop, stopAhead: stopAhead, img: img, unmounted: make(chan error, 1)}, nil
}

// release stops the walk and starts unmounting in the background; only
// the first call does anything.
func (m *buildMount) release() {
	m.once.Do(func() {
		m.stopAhead()
		if err := m.stopWarm(); err != nil {
			m.log.Debug("walking the mount ahead of mkfs", "err", err)
		}
		m.log.Debug("mount served mkfs", "requests", m.srv.Stats().String(), "spans", m.img.SpanStats().String())
		go func() { m.unmounted <- m.srv.Unmount() }()
	})
}

// wait releases the mount if that was not done yet and returns the
// unmount's result.
func (m *buildMount) wait() error {
	m.release()
	return <-m.unmounted
}
