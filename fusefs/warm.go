package fusefs

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
)

// WarmWalk walks the mount at dir ahead of a reader that will walk it
// in the same order, so that the reader finds the kernel's caches
// filled: every directory is listed (READDIRPLUS: names and attributes)
// and every symlink read, depth first in name order, the order of
// mkfs.ext4 -d (scandir with alphasort in the C locale). With
// Options.Prefetch, listing a directory also pushes its files' content.
//
// It must run in a process other than the one serving the mount (see
// Hazards in the package documentation): `ocifs build` runs it in a child.
// The walk's round trips then run on another CPU while the reader works,
// instead of on the reader's critical path. WarmWalk returns when the
// walk is done, when ctx ends (checked between directories), or at the
// first error. Stop it before Unmount: while it holds a directory open,
// the mount is busy.
func WarmWalk(ctx context.Context, dir string) error {
	return warmDir(ctx, dir)
}

func warmDir(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir) // sorted by name, bytewise
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch e.Type() {
		case fs.ModeSymlink:
			if _, err := os.Readlink(p); err != nil {
				return err
			}
		case fs.ModeDir:
			if err := warmDir(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}
