package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

// Flags for how the cache keeps layers: --cache-mode (env
// OCIFS_CACHE_MODE) and --span-cache. They are global flags, passed on to
// the mount server (storeArgs).

func cacheModeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-mode",
			Usage: "compact: read gzip and multi-frame zstd layers straight from their compressed blobs; " +
				"unpacked: keep a decompressed copy of every compressed layer (default: $OCIFS_CACHE_MODE, else " + string(cache.DefaultMode) + ")"},
		&cli.StringFlag{Name: "span-cache", Value: sizeString(cache.DefaultSpanCache),
			Usage: "memory for decoded spans of layers read from their compressed blobs (0: none; build: " + sizeString(buildSpanCache) + " unless set)"},
	}
}

// parseCacheModeFlags reads --cache-mode and --span-cache into g; the
// errors are usage errors, joined by the caller.
func parseCacheModeFlags(c *cli.Context, g *globals) []error {
	var errs []error
	mode := lookupString(c, "cache-mode")
	if mode == "" {
		mode = os.Getenv("OCIFS_CACHE_MODE")
	}
	if mode != "" {
		m, err := cache.ParseMode(mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cache-mode: %w", err))
		}
		g.Mode = m
	}
	s := strings.TrimSpace(lookupString(c, "span-cache"))
	if c.Command != nil && c.Command.Name == "build" && !isSet(c, "span-cache") {
		s = strconv.FormatInt(buildSpanCache, 10)
	}
	if s == "0" {
		g.SpanCache = -1
	} else if v, err := parseSize(s); err != nil {
		errs = append(errs, fmt.Errorf("--span-cache: %w", err))
	} else {
		g.SpanCache = v
	}
	return errs
}

// buildSpanCache is the span cache of `ocifs build`, which reads every
// file once: mkfs.ext4 -d reads big files well behind the mount's
// prefetcher, and a span evicted in between is decoded twice. On the
// benchmark image (118 MiB of spans hold live files) a cache that holds
// them all made the warm build about 5% faster than 32 or 64 MiB (see
// docs/BENCHMARKS.md); a build's memory is short-lived. That comparison
// predates cache.Image.DecodeAhead (at most 32 MiB ahead) and spans
// leaving the cache once read; since then the bound only matters for
// spans read before they are used up, as when mkfs lags far behind.
const buildSpanCache = 256 << 20

// cacheModeArgs renders the flags for the mount server.
func (g *globals) cacheModeArgs() []string {
	var out []string
	if g.Mode != "" {
		out = append(out, "--cache-mode", string(g.Mode))
	}
	return append(out, "--span-cache", strconv.FormatInt(max(g.SpanCache, 0), 10))
}
