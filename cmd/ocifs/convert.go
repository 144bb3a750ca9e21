package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/cache"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "push a copy of an image with its layers rewritten as eStargz, for 'ocifs mount --lazy'",
		ArgsUsage: "REF NEWREF",
		Description: "Gets REF (from the cache, else pulled), rebuilds each layer as eStargz (gzip whose files can be\n" +
			"fetched one by one, with a table of contents) and pushes the result to NEWREF, a registry reference.\n" +
			"Each layer carries its TOC digest as the containerd.io/snapshot/stargz/toc.digest annotation, so that\n" +
			"a lazy mount can check every chunk it fetches. The converted image merges to the same tree as REF.\n" +
			"Prints the new manifest digest.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "chunk-size", Usage: "split files into chunks of at most `BYTES` (default 4 MiB)"},
		},
		Action: runConvert,
	}
}

func runConvert(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("convert takes REF NEWREF, got %d arguments", c.NArg())
	}
	if c.Int("chunk-size") < 0 {
		return usagef("--chunk-size %d: give a positive size", c.Int("chunk-size"))
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
	d, err := store.ConvertEStargz(c.Context, img, c.Args().Get(1), cache.ConvertOptions{ChunkSize: c.Int("chunk-size")})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, d)
	return nil
}
