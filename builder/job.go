package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ocifs/ocifs/overlay"
)

// build is one run of Build: the temporary image and the fixed
// environment every tool runs with.
type build struct {
	tree     *overlay.Tree
	src      string
	work     string
	outDir   string
	img      string
	tools    Tools
	opts     Options
	r        runner
	uuid     string
	hashSeed string
	res      *Result
}

func newBuild(t *overlay.Tree, src, work string, tools Tools, opts Options) (*build, error) {
	mkConf, err := writeFile(work, "mke2fs.conf", mke2fsConf(!opts.NoJournal))
	if err != nil {
		return nil, err
	}
	fsckConf, err := writeFile(work, "e2fsck.conf", e2fsckConf)
	if err != nil {
		return nil, err
	}
	now := strconv.FormatInt(buildTime(t, opts), 10)
	env := append(baseEnv(),
		"MKE2FS_CONFIG="+mkConf,
		"E2FSCK_CONFIG="+fsckConf,
		"E2FSPROGS_FAKE_TIME="+now, // e2fsprogs 1.47.0
		"SOURCE_DATE_EPOCH="+now,   // e2fsprogs 1.47.1 and later
		"E2FSCK_TIME="+now,
	)
	b := &build{
		tree: t, src: src, work: work, outDir: filepath.Dir(work), tools: tools, opts: opts,
		img:      filepath.Join(work, "image.ext4"),
		r:        runner{env: env, log: opts.logger()},
		uuid:     opts.UUID,
		hashSeed: deriveUUID(opts.Seed, "hash_seed"),
	}
	if b.uuid == "" {
		b.uuid = deriveUUID(opts.Seed, "uuid")
	}
	b.uuid = strings.ToLower(b.uuid)
	b.res = &Result{UUID: b.uuid, Tools: tools, Elapsed: map[Phase]time.Duration{}}
	return b, nil
}

func (b *build) run(ctx context.Context, l *Layout) (*Result, error) {
	for {
		err := b.phase(PhaseMkfs, func() error { return b.mkfs(ctx, l) })
		var small *TooSmallError
		if err == nil || !errors.As(err, &small) || b.opts.Size > 0 || b.res.Retries >= maxRetries {
			if err != nil {
				return nil, err
			}
			break
		}
		bigger, gerr := l.grown(25)
		if gerr != nil {
			return nil, err
		}
		b.r.log.Warn("the size estimate was short; building again bigger (please report this)",
			"blocks", l.Blocks, "inodes", l.Inodes, "retry_blocks", bigger.Blocks, "error", err)
		b.res.Retries++
		l = bigger
	}
	b.res.Layout = l
	if err := b.fixup(ctx); err != nil {
		return nil, err
	}
	if err := b.phase(PhaseIndex, func() error { return b.index(ctx, l) }); err != nil {
		return nil, err
	}
	if err := b.phase(PhaseCheck, func() error { return b.verify(ctx) }); err != nil {
		return nil, err
	}
	return b.res, nil
}

func (b *build) phase(p Phase, fn func() error) error {
	b.opts.progress(p)
	start := time.Now()
	err := fn()
	b.res.Elapsed[p] += time.Since(start)
	return err
}

// mkfs creates the image file at its full (sparse) size and runs
// mkfs.ext4 -d over the source.
func (b *build) mkfs(ctx context.Context, l *Layout) error {
	os.Remove(b.img)
	f, err := os.OpenFile(b.img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating the image file: %w", noSpace(err))
	}
	err = f.Truncate(l.FileSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sizing the image file to %d bytes: %w", l.FileSize, noSpace(err))
	}
	args := mkfsArgs(l, b.tree.Root(), b.src, b.img, b.uuid, b.hashSeed, b.opts.Label)
	out, err := b.r.run(ctx, b.tools.Mkfs, args...)
	if err != nil {
		return err
	}
	if out.code != 0 {
		return mkfsError(out, l, b.outDir)
	}
	if strings.Contains(out.stderr, "too small for a journal") {
		return &ToolError{Tool: "mkfs.ext4", Stderr: "made no journal: " + summarize(out.stderr, 3)}
	}
	return nil
}

// Messages of libext2fs and of the C library that tell why mke2fs failed.
var (
	fullMsgs   = []string{"Could not allocate block", "No free space in the directory", "No free space in extended attribute"}
	inodesMsgs = []string{"Could not allocate inode"}
	diskMsgs   = []string{"No space left on device", "short write", "Disk quota exceeded"}
)

func mkfsError(out output, l *Layout, outDir string) error {
	msg := out.stderr + "\n" + out.stdout
	switch {
	case containsAny(msg, diskMsgs):
		return fmt.Errorf("writing the image in %s: %w", outDir, ErrNoSpace)
	case containsAny(msg, inodesMsgs):
		return &TooSmallError{Inodes: true, Have: int64(l.Inodes), Need: int64(l.Content.peakInodes())}
	case containsAny(msg, fullMsgs):
		return &TooSmallError{Have: l.FileSize, Need: l.NeedSize()}
	}
	return &ToolError{Tool: "mkfs.ext4", Code: out.code, Stderr: summarize(msg, 6)}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// index rewrites directories with hash indexes (mke2fs -d leaves them
// linear). e2fsck exits 0 when it only optimized; 1 or 2 mean it fixed a
// problem, so mke2fs's output was not clean.
func (b *build) index(ctx context.Context, l *Layout) error {
	out, err := b.r.run(ctx, b.tools.Fsck, "-fyD", b.img)
	if err != nil {
		return err
	}
	switch {
	case out.code == 0:
		return nil
	case containsAny(out.stdout+out.stderr, diskMsgs):
		return fmt.Errorf("indexing directories in %s: %w", b.outDir, ErrNoSpace)
	case out.code >= 4 && containsAny(out.stdout+out.stderr, fullMsgs):
		return &TooSmallError{Have: l.FileSize, Need: l.NeedSize()}
	}
	return &CheckError{Stage: "after mkfs", Code: out.code, Summary: summarize(out.stdout+"\n"+out.stderr, 8)}
}

var countsRE = regexp.MustCompile(`(\d+)/(\d+) files \([^)]*\), (\d+)/(\d+) blocks`)

// verify runs the read-only check the image must pass and records its
// counts.
func (b *build) verify(ctx context.Context) error {
	out, err := b.r.run(ctx, b.tools.Fsck, "-fn", b.img)
	if err != nil {
		return err
	}
	if out.code != 0 {
		return &CheckError{Stage: "after indexing", Code: out.code, Summary: summarize(out.stdout+"\n"+out.stderr, 8)}
	}
	m := countsRE.FindStringSubmatch(out.stdout)
	if m == nil {
		return fmt.Errorf("reading e2fsck's summary: no counts in %q", summarize(out.stdout, 4))
	}
	n := make([]uint64, 4)
	for i := range n {
		n[i], _ = strconv.ParseUint(m[i+1], 10, 64)
	}
	b.res.UsedInodes, b.res.Inodes, b.res.UsedBlocks, b.res.Blocks = n[0], n[1], n[2], n[3]
	return nil
}
