package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/overlay"
)

// buildMount is the private mount a build runs mkfs.ext4 -d over. It
// prefetches file content (mkfs reads every file it lists) and is walked
// ahead of mkfs (fusefs.Server.Warm), so that the round trips run beside
// mkfs rather than in its way. It is released as soon as mkfs is done:
// the walk stops and the unmount proceeds while e2fsck runs.
type buildMount struct {
	srv       *fusefs.Server
	log       *slog.Logger
	stopWarm  context.CancelFunc
	warmed    chan error // Warm's result
	unmounted chan error // Unmount's result, once released
	once      sync.Once  // guards the release
}

func startBuildMount(ctx context.Context, g *globals, tree *overlay.Tree, img *cache.Image, dir string) (*buildMount, error) {
	srv, err := fusefs.Mount(dir, tree, img, fusefs.Options{Logger: g.Log, FsName: "ocifs:" + img.Ref, Prefetch: true})
	if err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	m := &buildMount{srv: srv, log: g.Log, stopWarm: stop, warmed: make(chan error, 1), unmounted: make(chan error, 1)}
	go func() { m.warmed <- srv.Warm(wctx) }()
	return m, nil
}

// release stops the walk and starts unmounting in the background; only
// the first call does anything.
func (m *buildMount) release() {
	m.once.Do(func() {
		m.stopWarm()
		if err := <-m.warmed; err != nil && !errors.Is(err, context.Canceled) {
			m.log.Debug("walking the mount ahead of mkfs", "err", err)
		}
		m.log.Debug("mount served mkfs", "requests", m.srv.Stats().String())
		go func() { m.unmounted <- m.srv.Unmount() }()
	})
}

// wait releases the mount if that was not done yet and returns the
// unmount's result.
func (m *buildMount) wait() error {
	m.release()
	return <-m.unmounted
}
