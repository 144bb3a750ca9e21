package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ocifs/ocifs/overlay"
)

// Result describes a built image.
type Result struct {
	Path   string  // the output file
	Layout *Layout // what was asked of mke2fs
	UUID   string
	// Blocks and Inodes are the image's totals; Used* what is in use, as
	// the final e2fsck counted them.
	Blocks, UsedBlocks uint64
	Inodes, UsedInodes uint64
	// Retries counts builds redone bigger because the estimate was short
	// (only when the size is not fixed); 0 unless Plan has a bug.
	Retries int
	// Elapsed is the time each phase took.
	Elapsed map[Phase]time.Duration
	Tools   Tools
}

// maxRetries bounds how often an automatically sized build that ran out of
// space is redone 25% bigger.
const maxRetries = 2

// Build makes an ext4 image of the directory src, which must show t (an
// ocifs mount of t, or a plain directory holding the same tree), and
// writes it to out. It sizes the image with Plan, runs mkfs.ext4 -d,
// gives the root directory the tree's mode and times, indexes directories
// (e2fsck -fyD) and verifies the result (e2fsck -fn). The image is built
// in a temporary directory next to out and renamed to out only when
// verified; on any error or cancellation nothing is left at out and the
// temporary directory is removed.
func Build(ctx context.Context, t *overlay.Tree, src, out string, opts Options) (*Result, error) {
	l, err := Plan(t, opts)
	if err != nil {
		return nil, fmt.Errorf("sizing the image: %w", err)
	}
	tools, err := FindTools(ctx, opts.Tools)
	if err != nil {
		return nil, err
	}
	if err := checkOutput(out); err != nil {
		return nil, err
	}
	work, err := newWorkDir(out, opts.logger())
	if err != nil {
		return nil, err
	}
	defer work.Remove()
	b, err := newBuild(t, src, work.Path, tools, opts)
	if err != nil {
		return nil, err
	}
	res, err := b.run(ctx, l)
	if err != nil {
		return nil, err
	}
	if err := publish(b.img, out); err != nil {
		return nil, err
	}
	res.Path = out
	return res, nil
}

// checkOutput fails early when out cannot be written: a missing directory
// or a directory in the way.
func checkOutput(out string) error {
	dir := filepath.Dir(out)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking the output directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output directory %s is not a directory", dir)
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a directory", out)
	}
	return nil
}

// publish makes the verified image durable and moves it to out.
func publish(img, out string) error {
	f, err := os.Open(img)
	if err != nil {
		return fmt.Errorf("opening the built image: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("syncing the built image: %w", noSpace(err))
	}
	if err := os.Rename(img, out); err != nil {
		return fmt.Errorf("moving the image to %s: %w", out, err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// noSpace marks ENOSPC (and EDQUOT) as ErrNoSpace.
func noSpace(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w (%w)", ErrNoSpace, err)
	}
	return err
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
