package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show an image's layers, or one path's merged entry and its history across layers",
		ArgsUsage: "REF [PATH]",
		Description: "Without PATH, lists the layers: digest, compression, sizes, entries and whiteouts.\n" +
			"With PATH, prints the merged entry (as mount shows it) and what each layer did to it:\n" +
			"created, modified, changed (directory attributes), replaced (another type), whited out,\n" +
			"or hidden (an ancestor was whited out, made opaque or replaced).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.IntFlag{Name: "layers", Usage: "consider only the first `N` layers", DefaultText: "all"},
		},
		Action: runInspect,
	}
}

func runInspect(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return usagef("inspect takes REF [PATH], got %d arguments", c.NArg())
	}
	g, err := getGlobals(c)
	if err != nil {
		return err
	}
	store, err := openStore(g)
	if err != nil {
		return err
	}
	po, err := pullOptions(g, nil)
	if err != nil {
		return err
	}
	img, err := store.Get(c.Context, c.Args().First(), po)
	if err != nil {
		return err
	}
	defer img.Close()
	n := c.Int("layers")
	if n < 0 || n > len(img.Layers) {
		return usagef("--layers %d: the image has %d layers", n, len(img.Layers))
	}
	if c.NArg() == 1 {
		return printLayers(c.App.Writer, img, n, c.Bool("json"))
	}
	return inspectPath(c, img, n, c.Args().Get(1))
}

type layerJSON struct {
	Index            int    `json:"index"`
	Digest           string `json:"digest"`
	DiffID           string `json:"diffID"`
	MediaType        string `json:"mediaType"`
	Size             int64  `json:"size"`
	UncompressedSize int64  `json:"uncompressedSize"`
	Entries          int    `json:"entries"`
	Whiteouts        int    `json:"whiteouts"`
}

type imageJSON struct {
	Ref      string      `json:"ref"`
	Digest   string      `json:"digest"`
	Platform string      `json:"platform"`
	Layers   []layerJSON `json:"layers"`
}

func printLayers(w io.Writer, img *cache.Image, n int, asJSON bool) error {
	out := imageJSON{Ref: img.Ref, Digest: img.Digest.String(), Platform: img.Platform.String()}
	var size, usize int64
	entries := 0
	for i, l := range img.Layers {
		if n > 0 && i >= n {
			break
		}
		out.Layers = append(out.Layers, layerJSON{i, l.Digest.String(), l.DiffID.String(), string(l.MediaType),
			l.Size, l.UncompressedSize, l.Entries, l.Whiteouts})
		size, usize, entries = size+l.Size, usize+l.UncompressedSize, entries+l.Entries
	}
	if asJSON {
		return writeJSON(w, out)
	}
	fmt.Fprintf(w, "image     %s\ndigest    %s\nplatform  %s\n", out.Ref, out.Digest, out.Platform)
	fmt.Fprintf(w, "layers    %d (%s compressed, %s uncompressed, %d entries)\n\n",
		len(out.Layers), humanBytes(size), humanBytes(usize), entries)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tDIGEST\tCOMPRESSION\tSIZE\tUNCOMPRESSED\tENTRIES\tWHITEOUTS")
	for _, l := range out.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\n", l.Index, l.Digest, compressionOf(l.MediaType),
			humanBytes(l.Size), humanBytes(l.UncompressedSize), l.Entries, l.Whiteouts)
	}
	return tw.Flush()
}

// compressionOf names a layer media type's compression.
func compressionOf(mediaType string) string {
	switch {
	case strings.HasSuffix(mediaType, "gzip"):
		return "gzip"
	case strings.HasSuffix(mediaType, "zstd"):
		return "zstd"
	case strings.HasSuffix(mediaType, "tar"):
		return "none"
	}
	return mediaType
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes formats n in binary units with three significant digits.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.3g %ciB", v, "KMGTP"[i])
}

// modTime formats a node's or entry's mtime.
func modTime(sec int64, nsec uint32) string {
	return time.Unix(sec, int64(nsec)).UTC().Format(time.RFC3339Nano)
}

// describeLayer names layer i of img for humans.
func describeLayer(img *cache.Image, i int) string {
	if i < 0 {
		return "none (implicit root)"
	}
	return fmt.Sprintf("%d (%s)", i, img.Layers[i].Digest)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
