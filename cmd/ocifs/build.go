package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/builder"
	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/overlay"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "make an ext4 filesystem image of an image's merged root filesystem",
		ArgsUsage: "REF OUT.ext4",
		Description: "Pulls REF if it is not cached, mounts its merged layers privately and runs mkfs.ext4 -d\n" +
			"over the mount, so the image keeps the layers' owners, modes, setuid bits, capabilities,\n" +
			"hardlinks and device nodes, also when run by an ordinary user. Sizes the filesystem from\n" +
			"the content plus --headroom (or --free, or exactly --size), indexes directories and checks\n" +
			"the result with e2fsck before it appears at OUT. The same image and flags give the same\n" +
			"bytes (the UUID and hash seed derive from the image digest unless --uuid).",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "size", Usage: "make the image exactly `SIZE` (e.g. 2G, 512M); fails if the content does not fit"},
			&cli.StringFlag{Name: "free", Usage: "leave at least `SIZE` free in the image (instead of --headroom)"},
			&cli.Float64Flag{Name: "headroom", Value: builder.DefaultHeadroom, Usage: "free space to leave, in `PERCENT` of what the content needs"},
			&cli.Uint64Flag{Name: "inodes", Usage: "inode count", DefaultText: "what the image needs plus the headroom's share"},
			&cli.StringFlag{Name: "label", Usage: "filesystem `LABEL` (at most 16 bytes)"},
			&cli.StringFlag{Name: "uuid", Usage: "filesystem `UUID` (default: derived from the image digest)"},
			&cli.BoolFlag{Name: "no-journal", Usage: "build without a journal (smaller; no crash consistency in the guest)"},
		}, lazyFlags(false)...),
		Action: runBuild,
	}
}

// buildRequest is what a build command asks for, checked.
type buildRequest struct {
	Ref  string
	Out  string // absolute
	Opts builder.Options
	Lazy lazyRequest // with --lazy the background fetch is always on (runBuild): mkfs reads everything
}

func parseBuildRequest(c *cli.Context) (*buildRequest, error) {
	if c.NArg() != 2 {
		return nil, usagef("build takes REF OUT.ext4, got %d arguments", c.NArg())
	}
	out, err := filepath.Abs(c.Args().Get(1))
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", c.Args().Get(1), err)
	}
	r := &buildRequest{Ref: c.Args().Get(0), Out: out}
	if r.Lazy, err = parseLazyRequest(c); err != nil {
		return nil, err
	}
	o := &r.Opts
	o.Headroom = c.Float64("headroom")
	o.Inodes = c.Uint64("inodes")
	o.Label = c.String("label")
	o.UUID = c.String("uuid")
	o.NoJournal = c.Bool("no-journal")
	if o.Size, err = sizeFlag(c, "size"); err != nil {
		return nil, err
	}
	if o.Free, err = sizeFlag(c, "free"); err != nil {
		return nil, err
	}
	if c.IsSet("size") && (c.IsSet("free") || c.IsSet("headroom")) {
		return nil, usagef("--size fixes the size; leave out --free and --headroom")
	}
	if c.IsSet("inodes") && o.Inodes == 0 {
		return nil, usagef("--inodes 0: give a positive count")
	}
	if err := o.Validate(); err != nil {
		return nil, usageError(err)
	}
	return r, nil
}

// sizeFlag parses a size flag: bytes, or a number with a binary suffix
// K, M, G, T (KiB, MiB, ... and KB, MB, ... mean the same).
func sizeFlag(c *cli.Context, name string) (int64, error) {
	if !c.IsSet(name) {
		return 0, nil
	}
	n, err := parseSize(c.String(name))
	if err != nil {
		return 0, usagef("--%s: %v", name, err)
	}
	return n, nil
}

func parseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	mult := 1.0
	upper := strings.ToUpper(num)
	for _, suf := range []string{"IB", "B"} {
		upper = strings.TrimSuffix(upper, suf)
	}
	if i := strings.IndexAny(upper, "KMGT"); i >= 0 && i == len(upper)-1 {
		mult = math.Pow(1024, float64(strings.IndexByte("KMGT", upper[i])+1))
		upper = upper[:i]
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(upper), 64)
	if err != nil || v*mult < 1 || math.IsInf(v, 0) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size (e.g. 2G, 512M, 1048576)", s)
	}
	return int64(v * mult), nil
}

func runBuild(c *cli.Context) error {
	req, err := parseBuildRequest(c)
	if err != nil {
		return err
	}
	g, err := getGlobals(c)
	if err != nil {
		return err
	}
	if err := checkBuildPrerequisites(c.Context, req); err != nil {
		return err
	}
	show := newPhases(c.App.ErrWriter, isTerminal(c.App.ErrWriter))
	img, err := req.Lazy.fetchImage(c, g, req.Ref, false, nil)
	if err != nil {
		return err
	}
	defer img.Close()
	if img.Lazy() {
		// The build reads every file anyway; fetching in order beside it
		// keeps the link busy while mkfs works on what has arrived.
		go fetchInBackground(c.Context, g.Log, img)
	}
	res, err := buildImage(c.Context, g, img, req, show)
	show.stop()
	if err != nil {
		return err
	}
	if g.Verbose || isTerminal(c.App.ErrWriter) {
		fmt.Fprintln(c.App.Writer, buildSummary(img, res))
	}
	return nil
}

// checkBuildPrerequisites fails before any pull on what would fail after
// it: e2fsprogs, FUSE, the output directory.
func checkBuildPrerequisites(ctx context.Context, req *buildRequest) error {
	tools, err := builder.FindTools(ctx, builder.Tools{})
	if err != nil {
		return err
	}
	req.Opts.Tools = tools
	if err := fusefs.CheckPrerequisites(); err != nil {
		return err
	}
	dir := filepath.Dir(req.Out)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return &cliError{code: exitFailure, hint: "create the output directory first",
			err: fmt.Errorf("output directory %s: %w", dir, unwrapPathErr(err))}
	}
	// OUT is written as a new file and renamed over whatever is there:
	// only a regular file may be replaced so.
	if fi, err := os.Lstat(req.Out); err == nil {
		switch {
		case fi.IsDir():
			return usagef("output %s is a directory; give a file name", req.Out)
		case fi.Mode()&os.ModeSymlink != 0:
			return usagef("output %s is a symbolic link, which the build would replace; give the path it points to", req.Out)
		case !fi.Mode().IsRegular():
			return usagef("output %s is not a regular file but a %s; ocifs build writes a new file and renames it over OUT", req.Out, fileKind(fi.Mode()))
		}
	}
	return nil
}

// fileKind names the type of a file that is neither regular, a directory
// nor a symlink.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// buildImage merges the layers, mounts the tree privately on a temporary
// directory, runs the builder over it and unmounts.
func buildImage(ctx context.Context, g *globals, img *cache.Image, req *buildRequest, show *phases) (*builder.Result, error) {
	show.start("merge")
	tree, err := mergeImage(ctx, img, 0)
	if err != nil {
		return nil, err
	}
	show.start("mount")
	tmp, err := newBuildTmp(g.Log)
	if err != nil {
		return nil, err
	}
	defer tmp.Remove()
	mnt := tmp.mountPoint()
	m, err := startBuildMount(ctx, g, tree, img, mnt)
	if err != nil {
		return nil, err
	}
	total := contentBytes(tree)
	read := func() string {
		s := m.srv.Stats()
		return fmt.Sprintf("%s of %s read", humanBytes(int64(s.ReadBytes+s.PrefetchedBytes)), humanBytes(total))
	}
	res, err := runBuilder(ctx, g, tree, mnt, img, req, func(p builder.Phase) {
		switch p {
		case builder.PhaseMkfs:
			show.startWith(string(p), read)
			return
		case builder.PhaseIndex:
			m.release() // mkfs is done, and never runs again after this phase
		}
		show.start(string(p))
	})
	if uerr := m.wait(); uerr != nil {
		g.Log.Warn("unmounting the build's mount", "dir", mnt, "error", uerr)
		if err == nil {
			err = uerr
		}
	}
	return res, err
}

func runBuilder(ctx context.Context, g *globals, tree *overlay.Tree, mnt string, img *cache.Image, req *buildRequest, progress func(builder.Phase)) (*builder.Result, error) {
	opts := req.Opts
	opts.Seed = img.Digest.String()
	opts.Logger = g.Log
	opts.Progress = progress
	res, err := builder.Build(ctx, tree, mnt, req.Out, opts)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", req.Out, err)
	}
	return res, nil
}

// contentBytes is the size of the tree's file content, what mkfs reads.
func contentBytes(t *overlay.Tree) int64 {
	var n int64
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		if nd := t.Node(ino); nd.Type() == overlay.TypeRegular {
			n += nd.Size()
		}
	}
	return n
}

// buildSummary is the line printed after a build on a terminal or with
// --verbose.
func buildSummary(img *cache.Image, res *builder.Result) string {
	pct := func(a, b uint64) float64 { return 100 * float64(a) / float64(max(b, 1)) }
	return fmt.Sprintf("built %s from %s %s: %s, blocks %d/%d used (%.0f%%), inodes %d/%d used (%.0f%%), uuid %s",
		res.Path, img.Ref, img.Digest, humanBytes(res.Layout.FileSize),
		res.UsedBlocks, res.Blocks, pct(res.UsedBlocks, res.Blocks),
		res.UsedInodes, res.Inodes, pct(res.UsedInodes, res.Inodes), res.UUID)
}

// classifyBuild maps the builder's errors to exit codes and hints.
func classifyBuild(err error) (code int, hint string, ok bool) {
	var small *builder.TooSmallError
	var content *builder.ContentError
	var check *builder.CheckError
	switch {
	case errors.Is(err, builder.ErrMissingTool):
		return exitPrereq, "install e2fsprogs 1.43 or later (apt-get install e2fsprogs); ocifs also looks in /usr/sbin and /sbin", true
	case errors.Is(err, builder.ErrNoSpace):
		return exitFailure, "free space on that disk, or write the image somewhere else", true
	case errors.As(err, &small) && small.Inodes:
		return exitFailure, "raise --inodes, or leave it out to count them from the image", true
	case errors.As(err, &small):
		return exitFailure, "give a bigger --size, or leave it out to size the image from its content", true
	case errors.As(err, &content):
		return exitImage, "", true
	case errors.As(err, &check):
		return exitFailure, "this is a bug in mkfs.ext4 or in ocifs; rerun with --debug and report it", true
	}
	return 0, "", false
}
