package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/cache"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "push a copy of an image with its layers rewritten as eStargz or zstd:chunked, for 'ocifs mount --lazy'",
		ArgsUsage: "REF NEWREF",
		Description: "Gets REF (from the cache, else pulled), rebuilds each layer as eStargz (gzip whose files can be\n" +
			"fetched one by one, with a table of contents) or, with --format zstd:chunked, as zstd:chunked (the\n" +
			"same with zstd) and pushes the result to NEWREF, a registry reference. Each layer carries its TOC\n" +
			"digest as the containerd.io/snapshot/stargz/toc.digest annotation (zstd:chunked layers also the\n" +
			"io.containers.zstd-chunked.manifest-checksum and -position ones), so that a lazy mount can check\n" +
			"every chunk it fetches. The converted image merges to the same tree as REF.\n" +
			"Prints the new manifest digest.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "chunk-size", Usage: "split files into chunks of at most `SIZE` (e.g. 1M, 65536; at most 64M)", DefaultText: "4M"},
			&cli.StringFlag{Name: "min-chunk-size", Usage: "put small files together in members (gzip streams, zstd frames) of at least `SIZE` of data: fewer, bigger Range requests and a smaller TOC (at most 64M)", DefaultText: "0, one member per chunk"},
			&cli.StringFlag{Name: "format", Value: string(cache.FormatEStargz), Usage: "layer format: `estargz` or zstd:chunked"},
		},
		Action: runConvert,
	}
}

func runConvert(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("convert takes REF NEWREF, got %d arguments", c.NArg())
	}
	chunk, err := sizeFlag(c, "chunk-size")
	if err != nil {
		return err
	}
	if chunk > cache.MaxChunkSize {
		return usagef("--chunk-size %s: give a size up to 64M (a lazy mount pulls layers of bigger chunks whole)", c.String("chunk-size"))
	}
	var minChunk int64
	if v := c.String("min-chunk-size"); v != "" && v != "0" {
		if minChunk, err = sizeFlag(c, "min-chunk-size"); err != nil {
			return err
		}
		if minChunk > cache.MaxChunkSize {
			return usagef("--min-chunk-size %s: give a size up to 64M", v)
		}
	}
	format := cache.ConvertFormat(c.String("format"))
	if format != cache.FormatEStargz && format != cache.FormatZstdChunked {
		return usagef("--format %q: give %s or %s", format, cache.FormatEStargz, cache.FormatZstdChunked)
	}
	g, err := getGlobals(c)
	if err != nil {
		return err
	}
	img, err := fetchImage(c, g, 0, getImage(c, c.Args().Get(0)))
	if err != nil {
		return err
	}
	defer img.Close()
	store, err := openStore(g)
	if err != nil {
		return err
	}
	d, err := store.Convert(c.Context, img, c.Args().Get(1), cache.ConvertOptions{ChunkSize: int(chunk), MinChunkSize: int(minChunk), Format: format})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, d)
	return nil
}
