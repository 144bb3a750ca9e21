package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
)

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount an image's merged root filesystem read-only at DIR",
		ArgsUsage: "REF DIR",
		Description: "Pulls REF if it is not cached, then serves the merged layers (whiteouts applied) read-only\n" +
			"at DIR, an existing empty directory (with --lazy, while the layers download). Returns once\n" +
			"the mount answers, leaving a server in the background; 'ocifs umount DIR' stops it.\n" +
			"The mount is private to you unless\n" +
			"--allow-other; inside it, the image's owners and modes are shown but not enforced.\n" +
			"Once mounted, the background server logs warnings (failed reads) to a file in the cache, named\n" +
			"with --verbose: use --foreground --debug to watch every request.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached; Ctrl-C unmounts"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users in, enforcing the image's permissions (non-root: needs user_allow_other in /etc/fuse.conf)"},
			&cli.IntFlag{Name: "layers", Usage: "mount the merge of the first `N` layers only"},
			&cli.IntFlag{Name: "layer", Value: -1, Usage: "mount layer `I` (from 0, the base) alone, whiteout markers visible"},
			&cli.BoolFlag{Name: "prefetch", Usage: "when a directory is listed, load its small files into the page cache right away (for reading whole trees: tar, grep -r, diff -r)"},
		}, lazyFlags(true)...),
		Action: runMount,
	}
}

// mountRequest is what a mount command asks for, checked.
type mountRequest struct {
	Ref        string
	Dir        string // absolute
	Layers     int    // > 0: merge only the first Layers layers
	Layer      int    // >= 0: this layer alone, raw
	AllowOther bool
	Prefetch   bool
	Lazy       lazyRequest
	// Pinned is the manifest digest ocifs mount resolved REF to, which
	// it hands its server (cache.PullOptions.Pinned); zero if unknown.
	Pinned v1.Hash
}

func parseMountRequest(c *cli.Context) (*mountRequest, error) {
	if c.NArg() != 2 {
		return nil, usagef("mount takes REF DIR, got %d arguments", c.NArg())
	}
	r := &mountRequest{Ref: c.Args().Get(0), Layers: c.Int("layers"), Layer: c.Int("layer"), AllowOther: c.Bool("allow-other"), Prefetch: c.Bool("prefetch")}
	lr, err := parseLazyRequest(c)
	if err != nil {
		return nil, err
	}
	r.Lazy = lr
	if p := c.String(pinnedFlag); p != "" { // the server's flag alone
		if r.Pinned, err = v1.NewHash(p); err != nil {
			return nil, usagef("--%s %q: %v", pinnedFlag, p, err)
		}
	}
	if c.IsSet("layers") && c.IsSet("layer") {
		return nil, usagef("--layers and --layer exclude each other")
	}
	if r.Layers < 0 || (c.IsSet("layers") && r.Layers == 0) {
		return nil, usagef("--layers %d: give a number of layers from 1", r.Layers)
	}
	if c.IsSet("layer") && r.Layer < 0 {
		return nil, usagef("--layer %d: layers are numbered from 0", r.Layer)
	}
	dir, err := filepath.Abs(c.Args().Get(1))
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", c.Args().Get(1), err)
	}
	r.Dir = dir
	return r, nil
}

func runMount(c *cli.Context) error {
	req, err := parseMountRequest(c)
	if err != nil {
		return err
	}
	g, err := getGlobals(c)
	if err != nil {
		return err
	}
	if err := fusefs.CheckMountpoint(req.Dir); err != nil {
		return err
	}
	if err := fusefs.CheckPrerequisites(); err != nil {
		return err
	}
	// Pull here, with progress on a terminal; the server then finds the
	// image complete in the cache (with --lazy: the TOCs of its lazy
	// layers, and the others complete).
	if err := pullForMount(c, g, req); err != nil {
		return err
	}
	if c.Bool("foreground") {
		return mountForeground(c.Context, g, req)
	}
	pid, err := startMountServer(c.Context, g, req)
	if err != nil {
		return err
	}
	if g.Verbose {
		fmt.Fprintf(c.App.ErrWriter, "mounted %s at %s (server pid %d, log %s; 'ocifs umount %s' to stop it)\n",
			req.Ref, req.Dir, pid, serverLogPath(g.CacheDir, req.Dir), req.Dir)
	}
	return nil
}

func pullForMount(c *cli.Context, g *globals, req *mountRequest) error {
	// With --lazy, TOCs only; the server finds them in the cache, and the
	// manifest and config too (req.Pinned): it does not resolve REF again.
	img, err := req.Lazy.fetchImage(c, g, req.Ref, req.fills(), &req.Pinned)
	if errors.Is(err, errServeWhilePulling) {
		ref, err := cache.ParseRef(req.Ref, g.Insecure)
		if err != nil {
			return err
		}
		req.Ref = ref // oci: and docker-archive: paths made absolute
		return nil
	}
	if err != nil {
		return err
	}
	defer img.Close()
	// The server runs in "/": hand it the normalized ref, whose oci: and
	// docker-archive: paths are absolute.
	req.Ref, req.Pinned = img.Ref, img.Digest
	return checkLayerFlags(img, req)
}

// fills reports whether the mount is served while the image's layers
// download: with --lazy, of the whole merged image.
func (r *mountRequest) fills() bool {
	return r.Lazy.Lazy && r.Layer < 0 && r.Layers == 0
}

// checkLayerFlags checks --layers and --layer against the image.
func checkLayerFlags(img *cache.Image, req *mountRequest) error {
	n := len(img.Layers)
	if req.Layers > n {
		return usagef("--layers %d: the image has %d layers", req.Layers, n)
	}
	if req.Layer >= n {
		return usagef("--layer %d: the image has %d layers (0 to %d)", req.Layer, n, n-1)
	}
	return nil
}

// mountForeground serves in this process until Ctrl-C (or SIGTERM), then
// unmounts; also returns when someone else unmounts DIR.
func mountForeground(ctx context.Context, g *globals, req *mountRequest) error {
	m, err := openMount(ctx, g, req)
	if err != nil {
		return err
	}
	defer m.close()
	if g.Verbose || isTerminal(os.Stderr) {
		fmt.Fprintf(os.Stderr, "serving %s at %s; Ctrl-C unmounts\n", req.Ref, req.Dir)
	}
	return m.serveUntil(ctx, g)
}

// mountFailure adds a hint to a failed mount where one helps.
func mountFailure(req *mountRequest, err error) error {
	if req.AllowOther && os.Geteuid() != 0 && !errors.Is(err, fusefs.ErrNoFUSE) && !errors.Is(err, fusefs.ErrNoFusermount) {
		return &cliError{code: exitFailure, err: err,
			hint: "--allow-other as an ordinary user needs 'user_allow_other' in /etc/fuse.conf"}
	}
	return err
}

// classifyMount maps the errors of fusefs (mount, umount, build).
func classifyMount(err error) (code int, hint string, ok bool) {
	var mp *fusefs.MountpointError
	switch {
	case errors.Is(err, fusefs.ErrNoFUSE):
		return exitPrereq, "load the fuse module (modprobe fuse) and install fuse3 (apt-get install fuse3); " +
			"in a container, pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)", true
	case errors.Is(err, fusefs.ErrNoFusermount):
		return exitPrereq, "install fuse3 (apt-get install fuse3): it provides the setuid fusermount3 helper " +
			"ordinary users mount with", true
	case errors.Is(err, fusefs.ErrBusy):
		return exitFailure, "close files and leave directories under the mount (fuser -vm DIR lists who uses it), " +
			"or detach it anyway with 'ocifs umount --lazy DIR'", true
	case errors.As(err, &mp):
		switch mp.Problem {
		case fusefs.ProblemMounted:
			return exitFailure, "unmount it first: ocifs umount " + mp.Dir, true
		case fusefs.ProblemDeadMount:
			return exitFailure, "clean it up with: ocifs umount " + mp.Dir, true
		case fusefs.ProblemMissing, fusefs.ProblemNotDir, fusefs.ProblemNotEmpty:
			return exitUsage, "mount onto an existing empty directory (mkdir it first)", true
		}
		return exitUsage, "", true
	}
	return 0, "", false
}
