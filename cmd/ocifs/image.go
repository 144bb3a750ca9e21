package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/overlay"
	"github.com/urfave/cli/v2"
)

// openStore opens the cache named by the global flags.
func openStore(g *globals) (*cache.Store, error) {
	s, err := cache.Open(g.CacheDir, cache.Options{Logger: g.Log, Insecure: g.Insecure, Limits: g.Limits, Network: g.Network,
		Mode: g.Mode, SpanCache: g.SpanCache})
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return nil, &cliError{code: exitFailure, err: err,
			hint: "choose a cache directory you can write with --cache-dir or OCIFS_CACHE_DIR"}
	}
	return s, err
}

// fetcher gets an image from the store: Get, Pull or GetLazy.
type fetcher func(s *cache.Store, po cache.PullOptions) (*cache.Image, error)

// getImage returns ref's stored image if complete, else pulls it.
func getImage(c *cli.Context, ref string) fetcher {
	return func(s *cache.Store, po cache.PullOptions) (*cache.Image, error) { return s.Get(c.Context, ref, po) }
}

// fetchImage opens the cache and runs fetch with per-layer bars on a
// terminal while layers are fetched (jobs of them at once; 0: default).
func fetchImage(c *cli.Context, g *globals, jobs int, fetch fetcher) (*cache.Image, error) {
	store, err := openStore(g)
	if err != nil {
		return nil, err
	}
	var bars *pullBars
	var progress func(cache.Progress)
	if isTerminal(c.App.ErrWriter) {
		bars = newPullBars(c.Context, c.App.ErrWriter)
		progress = bars.update
	}
	po, err := pullOptions(g, progress)
	if err != nil {
		return nil, err
	}
	po.Jobs = jobs
	img, err := fetch(store, po)
	if bars != nil {
		bars.finish()
	}
	return img, err
}

// pullOptions turns the global flags into cache.PullOptions.
func pullOptions(g *globals, progress func(cache.Progress)) (cache.PullOptions, error) {
	po := cache.PullOptions{Progress: progress}
	if g.Platform != "" {
		p, err := cache.ParsePlatform(g.Platform)
		if err != nil {
			return po, usageError(err)
		}
		po.Platform = p
	}
	return po, nil
}

// imageArg returns the command's first argument, the image reference.
func imageArg(c *cli.Context, want int) (string, error) {
	if c.NArg() != want {
		return "", usagef("%s takes %d argument(s), got %d", c.Command.Name, want, c.NArg())
	}
	return c.Args().First(), nil
}

// mergeImage returns the merged tree of the image's first n layers (all
// when n <= 0), saved by an earlier run or merged now. A layer Merge
// rejects is named by its digest.
func mergeImage(ctx context.Context, img *cache.Image, n int) (*overlay.Tree, error) {
	if n > len(img.Layers) {
		return nil, usagef("--layers %d: the image has %d layers", n, len(img.Layers))
	}
	tree, err := img.Tree(ctx, n)
	if err != nil {
		return nil, layerError(img, err)
	}
	return tree, nil
}

// layerError names the layer of an overlay.EntryError by its digest and
// marks it an image problem.
func layerError(img *cache.Image, err error) error {
	var ee *overlay.EntryError
	if !errors.As(err, &ee) {
		return err // not the image's shape: loading the indexes failed
	}
	if ee.Layer >= 0 && ee.Layer < len(img.Layers) {
		return fmt.Errorf("%w: merging layer %d (%s): entry %q: %w",
			cache.ErrInvalidImage, ee.Layer, img.Layers[ee.Layer].Digest, ee.Name, ee.Err)
	}
	return fmt.Errorf("%w: merging layers: %w", cache.ErrInvalidImage, err)
}
