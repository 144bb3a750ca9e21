package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

func cacheCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "cache",
		Usage: "list, verify or prune the local image cache",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("cache: unknown subcommand %q; give ls, verify or prune", c.Args().First())
			}
			return usagef("cache needs a subcommand: ls, verify or prune")
		},
		Subcommands: []*cli.Command{
			{
				Name:   "ls",
				Usage:  "list stored images with the disk they use (blobs, unpacked copies, indexes) and how each layer is served",
				Flags:  []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "layers", Usage: "list each image's layers too"}},
				Action: runCacheLs,
			},
			{
				Name:  "verify",
				Usage: "re-hash every blob and unpacked copy, check every index; exit 1 if anything is wrong",
				Flags: []cli.Flag{jsonFlag,
					&cli.BoolFlag{Name: "repair", Usage: "remove bad files so that the next pull fetches or rebuilds them"}},
				Action: runCacheVerify,
			},
			{
				Name:      "prune",
				Usage:     "remove blobs, indexes, unpacked copies and temp files no stored image references",
				ArgsUsage: "[REF...]",
				Description: "With REF arguments, forgets those images (every platform) first.\n" +
					"--all forgets every image, which empties the cache.\n" +
					"In compact mode, also removes the unpacked copies of layers that are read from their blobs.\n" +
					"--max-unpacked SIZE removes unpacked copies, least recently used first, until the rest fit;\n" +
					"running mounts keep reading theirs, and the next use reads the blob (compact) or rebuilds the copy (unpacked).",
				Flags: []cli.Flag{jsonFlag,
					&cli.BoolFlag{Name: "all", Usage: "forget every image first"},
					&cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed"},
					&cli.StringFlag{Name: "max-unpacked", Usage: "most disk for unpacked copies of layers, e.g. 2G (0: remove them all)"}},
				Action: runCachePrune,
			},
		},
	}
}

func cacheStore(c *cli.Context) (*cache.Store, *globals, error) {
	g, err := getGlobals(c)
	if err != nil {
		return nil, nil, err
	}
	s, err := openStore(g)
	return s, g, err
}

// lsImage is the JSON form of one stored image.
type lsImage struct {
	Ref      string            `json:"ref"`
	Platform string            `json:"platform"`
	Digest   string            `json:"digest"`
	Stored   string            `json:"stored,omitempty"` // the converted OCI manifest of a Docker one
	Size     int64             `json:"size"`             // layer blobs
	Unpacked int64             `json:"unpacked"`         // unpacked copies
	Index    int64             `json:"index"`            // layer indexes
	Seek     int64             `json:"seek"`             // seek indexes
	Trees    int64             `json:"trees"`            // saved merged trees
	Disk     int64             `json:"disk"`             // all of the image's files, manifest and config included
	Problem  string            `json:"problem,omitempty"`
	Layers   []cache.LayerInfo `json:"layers"`
}

func runCacheLs(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("cache ls takes no arguments")
	}
	s, _, err := cacheStore(c)
	if err != nil {
		return err
	}
	infos, err := s.List()
	if err != nil {
		return err
	}
	out := make([]lsImage, 0, len(infos))
	for _, in := range infos {
		li := lsImage{Ref: in.Ref, Platform: in.Platform, Digest: in.Digest.String(), Problem: in.Problem, Layers: in.Layers,
			Unpacked: in.Disk.Unpacked, Index: in.Disk.Indexes, Seek: in.Disk.Seek, Trees: in.Disk.Trees, Disk: in.Disk.Total()}
		if in.Stored != (v1.Hash{}) {
			li.Stored = in.Stored.String()
		}
		for _, l := range in.Layers {
			li.Size += l.Size
		}
		out = append(out, li)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	if err := printLs(c.App.Writer, out, c.Bool("layers")); err != nil {
		return err
	}
	u := s.Usage()
	_, err = fmt.Fprintf(c.App.Writer, "cache %s (%s mode): %s on disk: blobs %s, unpacked copies %s, layer indexes %s, seek indexes %s, merged trees %s, lazy layers still filling %s\n",
		s.Dir(), s.Mode(), humanBytes(u.Total()), humanBytes(u.Blobs), humanBytes(u.Unpacked), humanBytes(u.Indexes), humanBytes(u.Seek), humanBytes(u.Trees), humanBytes(u.Lazy))
	return err
}

// printLs prints one line per image (INDEXES: layer and seek indexes and
// merged trees; DISK: every file of the image) and, with layers, one per
// layer with how it is served.
func printLs(w io.Writer, images []lsImage, layers bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REF\tPLATFORM\tDIGEST\tLAYERS\tSIZE\tUNPACKED\tINDEXES\tDISK\tSTATUS")
	for _, im := range images {
		status := "ok"
		if im.Problem != "" {
			status = "incomplete: " + im.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", im.Ref, im.Platform, im.Digest, len(im.Layers),
			humanBytes(im.Size), humanBytes(im.Unpacked), humanBytes(im.Index+im.Seek+im.Trees), humanBytes(im.Disk), status)
		if !layers {
			continue
		}
		for i, l := range im.Layers {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%d entries\t%s\t%s\t%s\t\t%s\n", i, compressionOf(string(l.MediaType)), l.Digest,
				l.Entries, humanBytes(l.Size), humanBytes(l.UnpackedSize), humanBytes(l.IndexSize+l.SeekSize), servedAs(l))
		}
	}
	return tw.Flush()
}

// servedAs says how a layer is read: from its blob, its unpacked copy, or
// its blob through a seek index.
func servedAs(l cache.LayerInfo) string {
	s := map[cache.ContentKind]string{
		cache.ContentBlob:     "served from the blob",
		cache.ContentUnpacked: "served from the unpacked copy",
		cache.ContentGzip:     "served from the gzip blob (checkpoints)",
		cache.ContentZstd:     "served from the zstd blob (frames)",
		"":                    "incomplete (rebuilt on next use)",
	}[l.Content]
	switch {
	case l.Content == "" && l.Note != "":
		return l.Note
	case l.Note != "":
		s += "; " + l.Note
	}
	return s
}

func runCacheVerify(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("cache verify takes no arguments")
	}
	s, _, err := cacheStore(c)
	if err != nil {
		return err
	}
	rep, err := s.Verify(c.Context, cache.VerifyOptions{Repair: c.Bool("repair")})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		err = writeJSON(c.App.Writer, rep)
	} else {
		err = printVerify(c.App.Writer, rep)
	}
	if err != nil || len(rep.Problems) == 0 {
		return err
	}
	hint := "run 'ocifs cache verify --repair', then pull the affected images again"
	if c.Bool("repair") {
		hint = "pull the affected images again"
	}
	return &cliError{code: exitFailure, hint: hint, err: fmt.Errorf("cache verify: %d problem(s) in %s", len(rep.Problems), s.Dir())}
}

func printVerify(w io.Writer, rep *cache.VerifyReport) error {
	for _, p := range rep.Problems {
		what := p.Digest
		if what == "" {
			what = p.Path
		}
		repaired := ""
		if p.Repaired {
			repaired = " (removed)"
		}
		if _, err := fmt.Fprintf(w, "bad %s %s: %s%s\n", p.Kind, what, p.Detail, repaired); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "checked %d blobs, %d indexes, %d unpacked copies, %d seek indexes, %d merged trees (%s): %d problem(s)\n",
		rep.Blobs, rep.Indexes, rep.Unpacked, rep.Seek, rep.Trees, humanBytes(rep.Bytes), len(rep.Problems))
	return err
}

func runCachePrune(c *cli.Context) error {
	s, _, err := cacheStore(c)
	if err != nil {
		return err
	}
	if c.Bool("all") && c.NArg() > 0 {
		return usagef("cache prune: --all and REF arguments exclude each other")
	}
	po := cache.PruneOptions{All: c.Bool("all"), Untag: c.Args().Slice(), DryRun: c.Bool("dry-run")}
	if v := strings.TrimSpace(c.String("max-unpacked")); v != "" {
		po.EvictUnpacked = true
		if v != "0" {
			if po.MaxUnpacked, err = parseSize(v); err != nil {
				return usageError(fmt.Errorf("--max-unpacked: %w", err))
			}
		}
	}
	rep, err := s.Prune(c.Context, po)
	if err != nil { // a bad REF is exit 3, as in every other command
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, rep)
	}
	verb := "removed"
	if c.Bool("dry-run") {
		verb = "would remove"
	}
	for _, u := range rep.Untagged {
		fmt.Fprintf(c.App.Writer, "forgot %s\n", u)
	}
	for _, r := range rep.Removed {
		fmt.Fprintf(c.App.Writer, "%s %s\n", verb, r)
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s %d files, %s\n", verb, len(rep.Removed), humanBytes(rep.Bytes))
	return err
}
