package main

import (
	"fmt"

	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "fetch an image into the cache and index its layers",
		ArgsUsage: "REF",
		Description: "REF is a registry reference ([HOST/]REPO[:TAG|@sha256:DIGEST]), oci:DIR[:NAME]\n" +
			"(an OCI image layout) or docker-archive:FILE[:NAME] (docker save output).\n" +
			"A registry tag is always resolved again; only missing blobs are fetched.\n" +
			"Shows per-layer progress on a terminal; prints nothing else unless --verbose.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "jobs", Value: 4, Usage: "layers fetched in parallel"},
		},
		Action: runPull,
	}
}

func runPull(c *cli.Context) error {
	ref, err := imageArg(c, 1)
	if err != nil {
		return err
	}
	g, err := getGlobals(c)
	if err != nil {
		return err
	}
	img, err := fetchImage(c, g, c.Int("jobs"), func(s *cache.Store, po cache.PullOptions) (*cache.Image, error) {
		return s.Pull(c.Context, ref, po)
	})
	if err != nil {
		return err
	}
	defer img.Close()
	if g.Verbose {
		fmt.Fprintln(c.App.Writer, pullSummary(img))
	}
	return nil
}

// pullSummary is the one line --verbose prints after a pull.
func pullSummary(img *cache.Image) string {
	return fmt.Sprintf("pulled %s %s %s: %d layers, %d fetched (%s), %d indexed",
		img.Ref, img.Digest, platformString(img), len(img.Layers),
		img.Stats.LayersFetched, humanBytes(img.Stats.BytesFetched), img.Stats.LayersIndexed)
}

func platformString(img *cache.Image) string {
	p := img.Platform.OS + "/" + img.Platform.Architecture
	if img.Platform.Variant != "" {
		p += "/" + img.Platform.Variant
	}
	return p
}
