package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ocifs/ocifs/builder"
	"github.com/ocifs/ocifs/cache"
)

// runMkfs runs ocifs's builder (sizing, the same mkfs.ext4 -d options,
// root fixups, e2fsck -fyD, e2fsck -fn) over a plain directory SRC that
// holds the image's extracted tree, and prints the seconds each phase
// took as JSON. The tree for sizing comes from the ocifs cache, which
// must hold REF; a build of the same image through ocifs gets the same
// options, UUID and hash seed.
func runMkfs(args []string) error {
	fl := flag.NewFlagSet("mkfs", flag.ContinueOnError)
	ref := fl.String("ref", "", "image reference, cached in -cache")
	dir := fl.String("cache", "", "ocifs cache directory")
	debug := fl.Bool("debug", false, "log the tools' command lines to stderr")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 2 || *ref == "" || *dir == "" {
		return fmt.Errorf("mkfs takes -ref REF -cache DIR SRC OUT")
	}
	ctx := context.Background()
	store, err := cache.Open(*dir, cache.Options{})
	if err != nil {
		return err
	}
	img, err := store.Get(ctx, *ref, cache.PullOptions{})
	if err != nil {
		return err
	}
	defer img.Close()
	tree, err := img.Tree(ctx, 0)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if *debug {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	src, err := filepath.Abs(fl.Arg(0)) // the tools run in "/"
	if err != nil {
		return err
	}
	out, err := filepath.Abs(fl.Arg(1))
	if err != nil {
		return err
	}
	res, err := builder.Build(ctx, tree, src, out, builder.Options{
		Seed: img.Digest.String(), Headroom: builder.DefaultHeadroom, Logger: log,
	})
	if err != nil {
		return err
	}
	secs := map[string]float64{}
	for p, d := range res.Elapsed {
		secs[string(p)] = d.Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(secs)
}
