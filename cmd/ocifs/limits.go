package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

// Flags for the cache's limits on hostile images and for network retries.
// They are global flags (every command reads images), and the mount
// server gets them passed on (storeArgs).

func limitFlags() []cli.Flag {
	d, n := cache.DefaultLimits, cache.DefaultNetwork
	return []cli.Flag{
		&cli.StringFlag{Name: cache.LimitEntries, Value: strconv.Itoa(d.MaxEntries),
			Usage: "most tar entries in one layer (0: no limit)"},
		&cli.StringFlag{Name: cache.LimitName, Value: strconv.Itoa(d.MaxName),
			Usage: "most bytes in an entry's path or link target (0: no limit)"},
		&cli.StringFlag{Name: cache.LimitXattr, Value: sizeString(int64(d.MaxXattr)),
			Usage: "most bytes in one extended attribute value (0: no limit)"},
		&cli.StringFlag{Name: cache.LimitIndexMemory, Value: sizeString(d.MaxIndexMemory),
			Usage: "most memory for an image's layer indexes (0: no limit)"},
		&cli.StringFlag{Name: cache.LimitLayerSize, Value: sizeString(d.MaxLayerSize),
			Usage: "most bytes in one layer once uncompressed, the disk a layer may take (0: no limit)"},
		&cli.StringFlag{Name: "retries", Value: strconv.Itoa(n.Attempts - 1),
			Usage: "times a failed registry request is retried, with backoff (downloads resume where they broke)"},
		&cli.StringFlag{Name: "timeout", Value: n.StallTimeout.String(),
			Usage: "abandon and retry a registry request that receives nothing for this long"},
	}
}

// parseStoreFlags reads the limit and network flags.
func parseStoreFlags(c *cli.Context, g *globals) error {
	var errs []error
	count := func(name string) int {
		v, err := strconv.Atoi(strings.TrimSpace(lookupString(c, name)))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("--%s %q: want a count (0: no limit)", name, lookupString(c, name)))
		}
		return noLimit(int64(v))
	}
	size := func(name string) int64 {
		s := strings.TrimSpace(lookupString(c, name))
		if s == "0" {
			return -1
		}
		v, err := parseSize(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", name, err))
		}
		return v
	}
	g.Limits = cache.Limits{
		MaxEntries: count(cache.LimitEntries), MaxName: count(cache.LimitName),
		MaxXattr: int(size(cache.LimitXattr)), MaxIndexMemory: size(cache.LimitIndexMemory),
		MaxLayerSize: size(cache.LimitLayerSize),
	}
	retries, err := strconv.Atoi(strings.TrimSpace(lookupString(c, "retries")))
	if err != nil || retries < 0 {
		errs = append(errs, fmt.Errorf("--retries %q: want a count", lookupString(c, "retries")))
	}
	timeout, err := time.ParseDuration(strings.TrimSpace(lookupString(c, "timeout")))
	if err != nil || timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %q: want a duration such as 30s or 2m", lookupString(c, "timeout")))
	}
	g.Network = cache.Network{Attempts: retries + 1, StallTimeout: timeout}
	errs = append(errs, parseCacheModeFlags(c, g)...)
	if len(errs) > 0 {
		return usageError(errors.Join(errs...))
	}
	return nil
}

// noLimit maps the flags' 0 (no limit) to the cache's negative value.
func noLimit(v int64) int {
	if v == 0 {
		return -1
	}
	return int(v)
}

// storeArgs renders the limit and network flags for a child ocifs (the
// mount server), so that it reads the image under the same limits.
func (g *globals) storeArgs() []string {
	l, n := g.Limits, g.Network
	return append([]string{
		"--" + cache.LimitEntries, strconv.Itoa(max(l.MaxEntries, 0)),
		"--" + cache.LimitName, strconv.Itoa(max(l.MaxName, 0)),
		"--" + cache.LimitXattr, strconv.Itoa(max(l.MaxXattr, 0)),
		"--" + cache.LimitIndexMemory, strconv.FormatInt(max(l.MaxIndexMemory, 0), 10),
		"--" + cache.LimitLayerSize, strconv.FormatInt(max(l.MaxLayerSize, 0), 10),
		"--retries", strconv.Itoa(n.Attempts - 1),
		"--timeout", n.StallTimeout.String(),
	}, g.cacheModeArgs()...)
}

// limitHint says which flag to raise for an image over a limit.
func limitHint(err error) (string, bool) {
	var le *cache.LimitError
	if !errors.As(err, &le) {
		return "", false
	}
	now := strconv.FormatInt(le.Max, 10)
	switch le.Limit {
	case cache.LimitXattr, cache.LimitIndexMemory, cache.LimitLayerSize:
		now = sizeString(le.Max)
	}
	return fmt.Sprintf("the image exceeds --%s (now %s); if you trust it, raise the limit (0 removes it)", le.Limit, now), true
}

// sizeString renders a byte count the way parseSize reads it.
func sizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
