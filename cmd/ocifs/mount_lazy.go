package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/cache"
)

// lazyFlags are mount's (and build's) flags for reading eStargz and
// zstd:chunked layers from the registry as files are read.
func lazyFlags(background bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "lazy", Usage: lazyUsage(background)},
		&cli.DurationFlag{Name: "lazy-timeout", Value: cache.DefaultLazyReadTimeout, Usage: "with --lazy: a read that waits this long for the registry fails with EIO (a later read tries again); so do requests waiting for layers still downloading while the registry has sent nothing for this long"},
	}
	if background {
		flags = append(flags, &cli.BoolFlag{Name: "background-fetch", Usage: "with --lazy: download the rest of the lazy layers in the background, yielding to reads; once done the image is in the cache like a pulled one"})
	}
	return flags
}

func lazyUsage(mount bool) string {
	u := "read eStargz and zstd:chunked layers from the registry as files are read, chunk by chunk, instead of downloading them first"
	if mount {
		return u + "; an image without such layers is served while its layers download, top layer first"
	}
	return u + " (other layers are downloaded as usual)"
}

// lazyRequest is what the lazy flags ask for.
type lazyRequest struct {
	Lazy       bool
	Background bool
	Timeout    time.Duration
}

func parseLazyRequest(c *cli.Context) (lazyRequest, error) {
	r := lazyRequest{Lazy: c.Bool("lazy"), Background: c.Bool("background-fetch"), Timeout: c.Duration("lazy-timeout")}
	if r.Timeout <= 0 {
		return r, usagef("--lazy-timeout %v: give a positive duration", r.Timeout)
	}
	if !r.Lazy && (c.IsSet("background-fetch") || c.IsSet("lazy-timeout")) {
		return r, usagef("--background-fetch and --lazy-timeout go with --lazy")
	}
	return r, nil
}

func (r lazyRequest) args() []string {
	if !r.Lazy {
		return nil
	}
	args := []string{"--lazy", "--lazy-timeout", r.Timeout.String()}
	if r.Background {
		args = append(args, "--background-fetch")
	}
	return args
}

func (r lazyRequest) options() cache.LazyOptions {
	return cache.LazyOptions{ReadTimeout: r.Timeout}
}

// get returns ref's image from s: with --lazy, eStargz and zstd:chunked
// layers are only opened (TOCs) and the others pulled (GetLazy);
// without, the stored image if complete, else pulled (Get).
func (r lazyRequest) get(ctx context.Context, s *cache.Store, ref string, po cache.PullOptions) (*cache.Image, error) {
	if r.Lazy {
		return s.GetLazy(ctx, ref, po, r.options())
	}
	return s.Get(ctx, ref, po)
}

// errServeWhilePulling stops a mount command's pull where the mount
// server takes over (mountRequest.fills).
var errServeWhilePulling = errors.New("the mount server pulls the image")

// fetchImage is the package's fetchImage for a command with the lazy
// flags: get, with per-layer bars on a terminal. For a mount that fills
// (mountRequest.fills), an image the server would pull whole is left to
// it: errServeWhilePulling once the manifest is known.
func (r lazyRequest) fetchImage(c *cli.Context, g *globals, ref string, fills bool, resolved *v1.Hash) (*cache.Image, error) {
	return fetchImage(c, g, 0, func(s *cache.Store, po cache.PullOptions) (*cache.Image, error) {
		if !fills {
			return r.get(c.Context, s, ref, po)
		}
		ctx, cancel := context.WithCancelCause(c.Context)
		defer cancel(nil)
		po.Resolved = func(d v1.Hash, _ *v1.Manifest, _ *v1.ConfigFile) {
			*resolved = d
			cancel(errServeWhilePulling)
		}
		img, err := r.get(ctx, s, ref, po)
		if cause := context.Cause(ctx); errors.Is(cause, errServeWhilePulling) {
			if img != nil {
				img.Close()
			}
			return nil, cause
		}
		return img, err
	})
}

// backgroundRetry is how long a download in the background of a mount
// (fetchInBackground, a filling mount's pull) waits after a failure before
// trying again.
const backgroundRetry = 10 * time.Second

// fetchInBackground runs img.FetchAll until it succeeds, ctx ends or the
// image is closed; failures (the registry gone) are logged and retried.
func fetchInBackground(ctx context.Context, log *slog.Logger, img *cache.Image) {
	for {
		err := img.FetchAll(ctx)
		if err == nil {
			p := img.LazyProgress()
			log.Info("lazy layers fetched whole and stored", "layers", p.Layers, "bytes", p.Total)
			return
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) { // unmounted, or the image closed
			return
		}
		log.Warn("fetching lazy layers in the background; retrying", "in", backgroundRetry, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backgroundRetry):
		}
	}
}
